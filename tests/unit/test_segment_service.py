"""The segment lifecycle (services/segments.py, services/evaluation.py, services/jobs.py) on in-memory ports.

What reads contacts (previews, members, the shard and index workers) needs the contacts port, which is
still DynamoDB-only: a chunk's worker is stood in for by one that writes the members it is given, and
everything around it — jobs, the flip, the announcements, invalidation, revival, refresh — runs for real.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.domain.clock import system_clock
from chalicelib.domain.contacts import SHARDS, contact_id_for
from chalicelib.domain.errors import (
    ConfirmationRequired,
    Conflict,
    LimitExceeded,
    NotFound,
    UnknownTags,
    ValidationFailed,
)
from chalicelib.domain.settings import effective
from chalicelib.resources import JOBS_QUEUE, MEMBERSHIP_EVENTS_QUEUE
from chalicelib.services import evaluation, jobs, segments
from chalicelib.services.context import TenantContext
from tests.support.fakes import InMemoryCatalog, fake_context

MEMBERS: dict[str, set[int]] = {}
"""What the stand-in worker finds: segment id → member ordinals."""


def _members_as_given(ctx: TenantContext, job_id: str, payload: dict) -> dict:
    found = MEMBERS.get(payload["segment_id"], set())
    for shard in range(SHARDS):
        ctx.ports.segments.write_shard_members(
            payload["segment_id"], job_id, shard, {o for o in found if o % SHARDS == shard}
        )
    return {"counts": {"processed": 1, "members": len(found)}}


@pytest.fixture(autouse=True)
def evaluation_kind():
    real = evaluation.JOB_KINDS[evaluation.EVALUATE]
    jobs.register_kinds({evaluation.EVALUATE: replace(real, worker=_members_as_given)})
    MEMBERS.clear()
    yield
    jobs.register_kinds(evaluation.JOB_KINDS)


@pytest.fixture
def ctx() -> TenantContext:
    return fake_context(catalog=InMemoryCatalog(tags={"vip", "local"}, groups={"grp_1"}, types={"city": "string"}))


def run_jobs(ctx: TenantContext) -> None:
    """Deliver every queued job chunk (twice: redelivery changes nothing)."""
    messages = ctx.ports.queues.take(JOBS_QUEUE)
    for message in messages + messages:
        jobs.run_chunk(ctx, message)


def create(ctx: TenantContext, criteria: dict, name: str = "S", members: set[int] = frozenset()) -> dict:
    view = segments.create_segment(ctx, {"name": name, "criteria": criteria})
    MEMBERS[view["id"]] = set(members)
    return view


def test_a_new_segment_evaluates_through_a_job_and_is_ready_with_its_members(ctx):
    created = create(ctx, {"tag": "vip"}, members={3, 17, 40})
    assert created["status"] == "evaluating" and created["version"] == 1 and created["member_count"] is None
    job = jobs.job_view(ctx, created["job_id"])
    assert job["kind"] == "segment_evaluate" and job["detail"]["plan"] == "index" and job["status"] == "running"
    run_jobs(ctx)
    ready = segments.get_segment(ctx, created["id"])
    assert ready["status"] == "ready" and ready["member_count"] == 3 and ready["evaluated_version"] == 1
    assert jobs.job_view(ctx, created["job_id"])["status"] == "succeeded"
    assert ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE) == []  # a first evaluation announces nothing


def test_a_re_evaluation_announces_who_entered_and_left_once(ctx):
    created = create(ctx, {"tag": "vip"}, members={1, 2})
    run_jobs(ctx)
    MEMBERS[created["id"]] = {2, 5}
    again = segments.evaluate(ctx, created["id"])
    assert segments.evaluate(ctx, created["id"])["id"] == again["id"]  # asked twice while running: one job
    run_jobs(ctx)
    events = ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE)
    assert sorted((e["type"], e["contact_id"]) for e in events) == [
        ("segment.entered", contact_id_for(5)),
        ("segment.exited", contact_id_for(1)),
    ]
    assert {e["cause"]["reason"] for e in events} == {"requested"}
    segment = ctx.ports.segments.get(created["id"])
    assert segment is not None and segment.generation == again["id"] and segment.retired_generation is None
    assert ctx.ports.segments.members(created["id"], created["job_id"]) == set()  # the old generation is gone


def test_criteria_are_checked_against_the_tenant_context(ctx):
    with pytest.raises(UnknownTags):
        segments.create_segment(ctx, {"name": "S", "criteria": {"tag": "nope"}})
    with pytest.raises(ValidationFailed) as refused:
        segments.create_segment(ctx, {"name": "S", "criteria": {"attr": "plan", "op": "eq", "value": "x"}})
    assert refused.value.to_body()["error"]["details"]["field"] == "criteria.attr"
    with pytest.raises(ValidationFailed):
        segments.create_segment(ctx, {"name": "  ", "criteria": {"tag": "vip"}})
    assert ctx.ports.segments.all_segments() == []


def test_edits_version_the_segment_and_only_criteria_changes_re_evaluate(ctx):
    created = create(ctx, {"tag": "vip"})
    run_jobs(ctx)
    assert segments.update_segment(ctx, created["id"], {"name": "S"})["version"] == 1  # nothing changed
    renamed = segments.update_segment(ctx, created["id"], {"name": "VIPs"})
    assert renamed["version"] == 2 and renamed["status"] == "ready" and ctx.ports.queues.take(JOBS_QUEUE) == []
    changed = segments.update_segment(ctx, created["id"], {"criteria": {"tag": "local"}})
    assert changed["version"] == 3 and changed["status"] == "evaluating" and changed["tags"] == ["local"]
    history = segments.versions(ctx, created["id"], 2, None)
    assert [v["version"] for v in history["items"]] == [3, 2] and history["next_cursor"]
    rest = segments.versions(ctx, created["id"], 2, history["next_cursor"])
    assert [v["version"] for v in rest["items"]] == [1] and rest["next_cursor"] is None


def test_a_deleted_tag_invalidates_its_segments_and_a_fix_revives_those_it_broke(ctx):
    base = create(ctx, {"tag": "vip"}, "Base")
    mixer = create(ctx, {"all": [{"segment": base["id"]}, {"tag": "local"}]}, "Mixer")
    run_jobs(ctx)
    release = dict((kind, drop) for kind, _, drop in segments.DEPENDENTS)["tag"]
    ctx.ports.catalog.tags.discard("vip")
    release(ctx, "vip", "tag vip was deleted")
    broken = {s.id: s for s in ctx.ports.segments.all_segments()}
    assert broken[base["id"]].status == "invalid" and broken[base["id"]].invalid_because == "tag:vip"
    assert broken[mixer["id"]].invalid_because == f"segment:{base['id']}"
    with pytest.raises(Conflict):
        segments.evaluate(ctx, mixer["id"])
    with pytest.raises(ValidationFailed):  # an invalid segment cannot be included
        segments.create_segment(ctx, {"name": "X", "criteria": {"segment": base["id"]}})
    fixed = segments.update_segment(ctx, base["id"], {"criteria": {"tag": "local"}})
    assert fixed["status"] == "evaluating"
    assert ctx.ports.segments.get(mixer["id"]).status == "evaluating"  # revived: it was broken only by base
    run_jobs(ctx)
    assert {s.status for s in ctx.ports.segments.all_segments()} == {"ready"}


def test_time_dependent_segments_refresh_hourly_with_those_that_include_them(ctx):
    recent = create(ctx, {"event": "purchase", "within": "4d"}, "Recent")
    mixer = create(ctx, {"all": [{"segment": recent["id"]}, {"tag": "vip"}]}, "Recent VIPs")
    create(ctx, {"tag": "local"}, "Unrelated")
    run_jobs(ctx)
    assert (
        ctx.ports.segments.get(recent["id"]).time_dependent and not ctx.ports.segments.get(mixer["id"]).time_dependent
    )
    soon = system_clock() + timedelta(minutes=10)
    assert segments.refresh_time_dependent(ctx, {recent["id"]}, lambda: soon) == 0
    later = system_clock() + timedelta(hours=2)
    assert segments.refresh_time_dependent(ctx, {recent["id"]}, lambda: later) == 2
    causes = {jobs.job_view(ctx, m["job_id"])["detail"]["cause"] for m in ctx.ports.queues.sent[JOBS_QUEUE]}
    assert causes == {"refresh"}


def test_targets_respect_the_tenant_limit_and_name_existing_segments(ctx):
    ids = [create(ctx, {"tag": "vip"}, f"S{i}")["id"] for i in range(3)]
    limited = TenantContext(ctx.ports, effective({"limits": {"segments_per_campaign": 2}}))  # same data, lower limit
    assert segments.check_targets(ctx, "segments", ids, owner="campaign") == ids
    with pytest.raises(LimitExceeded):
        segments.check_targets(limited, "segments", ids, owner="campaign")
    with pytest.raises(ValidationFailed) as unknown:
        segments.check_targets(ctx, "segments", [ids[0], "seg_missing"], owner="campaign")
    assert unknown.value.to_body()["error"]["details"]["field"] == "segments[1]"
    with pytest.raises(ValidationFailed):
        segments.check_targets(ctx, "segments", [ids[0], ids[0]], owner="campaign")


def test_overlap_counts_both_only_each_and_jaccard(ctx):
    a = create(ctx, {"tag": "vip"}, "A", members={1, 2, 3, 4})
    b = create(ctx, {"tag": "local"}, "B", members={3, 4, 5})
    with pytest.raises(Conflict):  # not evaluated yet
        segments.overlap(ctx, f"{a['id']},{b['id']}")
    run_jobs(ctx)
    result = segments.overlap(ctx, f"{a['id']},{b['id']}")
    assert result["pairs"] == [
        {"a": a["id"], "b": b["id"], "both": 2, "only_a": 2, "only_b": 1, "jaccard": round(2 / 5, 6)}
    ]
    with pytest.raises(ValidationFailed):
        segments.overlap(ctx, a["id"])


def test_delete_always_asks_for_confirmation_and_then_removes_everything(ctx):
    created = create(ctx, {"tag": "vip"}, members={1})
    run_jobs(ctx)
    with pytest.raises(ConfirmationRequired):
        segments.delete_segment(ctx, created["id"], confirm=False)
    segments.delete_segment(ctx, created["id"], confirm=True)
    with pytest.raises(NotFound):
        segments.get_segment(ctx, created["id"])
    assert ctx.ports.segments.members(created["id"], created["job_id"]) == set()


def test_a_failed_evaluation_keeps_the_previous_membership(ctx):
    created = create(ctx, {"tag": "vip"}, members={1, 2})
    run_jobs(ctx)
    job = segments.evaluate(ctx, created["id"])
    message = ctx.ports.queues.take(JOBS_QUEUE)[0]
    jobs.fail_chunk(ctx, message, "the shard could not be read")
    jobs.fail_chunk(ctx, message, "the shard could not be read")  # a redelivered dead letter
    failed = segments.get_segment(ctx, created["id"])
    assert failed["status"] == "failed" and job["id"] in failed["status_reason"] and failed["member_count"] == 2
    assert jobs.job_view(ctx, job["id"])["detail"]["failure"] == "the shard could not be read"
