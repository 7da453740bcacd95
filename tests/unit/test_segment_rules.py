"""Segment statuses and the rules that move between them (domain/segments.py), without any storage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chalicelib.domain import segments as rules
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.segments import EVALUATING, FAILED, INVALID, READY, Segment

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def segment(segment_id: str, references: set[str] = frozenset(), **fields) -> Segment:
    base = Segment(
        id=segment_id,
        name=segment_id,
        description=None,
        criteria={"tag": "vip"},
        tags=frozenset({"vip"}),
        groups=frozenset(),
        references=frozenset(references),
        time_dependent=False,
        version=1,
        status=READY,
        created_at="2026-11-01T00:00:00Z",
        updated_at="2026-11-01T00:00:00Z",
    )
    return replace(base, **fields)


def test_referrers_are_found_through_chains_once_each_nearest_first():
    a, b, c, d = segment("a"), segment("b", {"a"}), segment("c", {"b", "a"}), segment("d")
    found = rules.referrers([a, b, c, d], "a")
    assert [s.id for s in found] == ["b", "c"]
    assert rules.referrers([a, b, c, d], "d") == []


def test_invalidation_names_the_cause_for_each_referrer():
    a, b, c = segment("a"), segment("b", {"a"}), segment("c", {"b"})
    changes = dict(rules.invalidations([a, b, c], a, "tag vip was deleted", "tag:vip"))
    assert changes["a"] == {
        "status": INVALID, "status_reason": "tag vip was deleted", "invalid_because": "tag:vip", "job_id": None
    }  # fmt: skip
    assert changes["b"]["invalid_because"] == "segment:a"
    assert changes["c"]["invalid_because"] == "segment:b"
    assert "segment b, which is invalid: tag vip was deleted" in changes["c"]["status_reason"]


def test_an_edit_is_a_new_version_and_new_criteria_revive_an_invalid_segment():
    before = segment("a")
    assert rules.edited(before, before, criteria_given=False, now="later") is None
    renamed = rules.edited(before, replace(before, name="b"), criteria_given=False, now="later")
    assert renamed is not None and (renamed.version, renamed.updated_at, renamed.status) == (2, "later", READY)
    broken = segment("a", status=INVALID, status_reason="gone", invalid_because="tag:vip")
    revived = rules.edited(broken, broken, criteria_given=True, now="later")
    assert revived is not None and revived.status == EVALUATING and revived.invalid_because is None


def test_only_a_segment_broken_by_a_revived_one_is_revivable():
    broken_by_a = segment("b", {"a"}, status=INVALID, invalid_because="segment:a")
    broken_by_tag = segment("c", status=INVALID, invalid_because="tag:vip")
    assert rules.revivable_by(broken_by_a, {"a"})
    assert not rules.revivable_by(broken_by_a, {"x"})
    assert not rules.revivable_by(broken_by_tag, {"a"})
    assert not rules.revivable_by(segment("d", {"a"}), {"a"})  # not invalid at all


def test_refresh_is_due_for_ready_segments_evaluated_nearly_an_hour_ago():
    fresh = segment("a", evaluated_at=to_rfc3339(NOW - timedelta(minutes=10)))
    old = segment("b", evaluated_at=to_rfc3339(NOW - timedelta(minutes=56)))
    assert not rules.due_for_refresh(fresh, NOW)
    assert rules.due_for_refresh(old, NOW)
    assert rules.due_for_refresh(segment("c"), NOW)  # never evaluated
    assert not rules.due_for_refresh(replace(old, status=EVALUATING), NOW)
    assert rules.due_for_refresh(segment("d", evaluated_at="0001-01-01T00:00:00Z"), NOW)  # unreadable: refresh


def test_a_failed_job_only_fails_the_segment_still_waiting_for_it():
    waiting = segment("a", status=EVALUATING, job_id="job_1")
    assert rules.failure_fields(waiting, "job_1", "boom") == {
        "status": FAILED, "status_reason": "evaluation job_1 failed: boom; the previous membership stays"
    }  # fmt: skip
    assert rules.failure_fields(waiting, "job_0", "boom") is None
    assert rules.failure_fields(replace(waiting, status=READY), "job_1", "boom") is None


def test_pending_generation_and_live_membership():
    evaluating = segment("a", status=EVALUATING, job_id="job_2", generation="job_1")
    assert evaluating.pending_generation == "job_2" and evaluating.has_membership
    first = segment("b", status=EVALUATING, job_id="job_1", generation=None)
    assert first.pending_generation == "job_1" and first.has_membership
    assert not segment("c", generation=None).has_membership
    assert not segment("d", status=INVALID, generation="job_1").has_membership
    assert segment("e", {"x"}).uses("segment", "x") and segment("e").uses("tag", "vip")
