"""The segment lifecycle (services/segments.py, services/evaluation.py, services/jobs.py) on in-memory ports:
the real evaluation workers (tag index and shard scans) over contacts put in the fake, the jobs, the flip,
the announcements, invalidation, revival, refresh, previews, members and overlap. No moto."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from chalicelib.domain.clock import system_clock
from chalicelib.domain.contacts import contact_id_for
from chalicelib.domain.errors import (
    ConfirmationRequired,
    Conflict,
    LimitExceeded,
    NotFound,
    UnknownTags,
    ValidationFailed,
)
from chalicelib.domain.segments import changes_from, draft_from, preview_from
from chalicelib.domain.settings import effective
from chalicelib.resources import JOBS_QUEUE, MEMBERSHIP_EVENTS_QUEUE
from chalicelib.services import evaluation, jobs, segments, shards
from chalicelib.services.context import TenantContext
from tests.support.fakes import InMemoryCatalog, fake_context
from tests.support.on_fakes import create, members, put, run_jobs


@pytest.fixture(autouse=True)
def evaluation_kind():
    jobs.register_kinds(evaluation.JOB_KINDS | shards.JOB_KINDS)


@pytest.fixture
def ctx() -> TenantContext:
    return fake_context(catalog=InMemoryCatalog(tags={"vip", "local"}, groups={"grp_1"}, types={"city": "string"}))


def test_a_tag_segment_evaluates_from_the_index_and_is_ready_with_its_members(ctx):
    for ordinal, tags in ((3, ("vip",)), (17, ("vip", "local")), (40, ("local",)), (41, ())):
        put(ctx, ordinal, *tags)
    created = create(ctx, {"tag": "vip"})
    assert created["status"] == "evaluating" and created["version"] == 1 and created["member_count"] is None
    job = jobs.job_view(ctx, created["job_id"])
    assert job["kind"] == "segment_evaluate" and job["detail"]["plan"] == "index" and job["status"] == "running"
    run_jobs(ctx)
    ready = segments.get_segment(ctx, created["id"])
    assert ready["status"] == "ready" and ready["member_count"] == 2 and ready["evaluated_version"] == 1
    assert jobs.job_view(ctx, created["job_id"])["status"] == "succeeded"
    assert sorted(members(ctx, created["id"])) == ["p-17", "p-3"]
    assert ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE) == []  # a first evaluation announces nothing


def test_attribute_criteria_scan_the_shards(ctx):
    put(ctx, 1, city="Toronto")
    put(ctx, 2, city="Paris")
    put(ctx, 3, "vip", city="Toronto")
    created = create(ctx, {"attr": "city", "op": "eq", "value": "Toronto"})
    assert jobs.job_view(ctx, created["job_id"])["detail"]["plan"] == "shards"
    run_jobs(ctx)
    assert sorted(members(ctx, created["id"])) == ["p-1", "p-3"]
    both = create(ctx, {"all": [{"tag": "vip"}, {"attr": "city", "op": "eq", "value": "Toronto"}]})
    assert jobs.job_view(ctx, both["job_id"])["detail"]["plan"] == "narrowed"
    run_jobs(ctx)
    assert members(ctx, both["id"]) == ["p-3"]


def test_a_re_evaluation_announces_who_entered_and_left_once(ctx):
    put(ctx, 1, "vip")
    put(ctx, 2, "vip")
    created = create(ctx, {"tag": "vip"})
    run_jobs(ctx)
    put(ctx, 1)
    put(ctx, 5, "vip")
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


def test_previews_count_exactly_and_show_the_same_sample_for_the_same_criteria(ctx):
    for ordinal in range(1, 31):
        put(ctx, ordinal, *(("vip",) if ordinal % 3 == 0 else ()), city="Toronto" if ordinal % 2 else "Paris")
    by_index = segments.preview(ctx, preview_from({"criteria": {"tag": "vip"}, "sample_size": 4}))
    assert by_index["count"] == 10 and by_index["plan"] == "index" and len(by_index["sample"]) == 4
    assert (
        segments.preview(ctx, preview_from({"criteria": {"tag": "vip"}, "sample_size": 4}))["sample"]
        == by_index["sample"]
    )
    scanned = segments.preview(
        ctx, preview_from({"criteria": {"all": [{"tag": "vip"}, {"attr": "city", "op": "eq", "value": "Paris"}]}})
    )
    assert scanned["count"] == 5 and all(c["attributes"]["city"] == "Paris" for c in scanned["sample"])
    with pytest.raises(ValidationFailed):
        segments.preview(ctx, preview_from({"criteria": {"tag": "vip"}, "sample_size": 51}))


def test_criteria_are_checked_against_the_tenant_context(ctx):
    with pytest.raises(UnknownTags):
        create(ctx, {"tag": "nope"})
    with pytest.raises(ValidationFailed) as refused:
        create(ctx, {"attr": "plan", "op": "eq", "value": "x"})
    assert refused.value.to_body()["error"]["details"]["field"] == "criteria.attr"
    with pytest.raises(ValidationFailed):
        segments.create_segment(ctx, draft_from({"name": "  ", "criteria": {"tag": "vip"}}))
    assert ctx.ports.segments.all_segments() == []


def test_edits_version_the_segment_and_only_criteria_changes_re_evaluate(ctx):
    created = create(ctx, {"tag": "vip"})
    run_jobs(ctx)
    assert segments.update_segment(ctx, created["id"], changes_from({"name": "S"}))["version"] == 1  # unchanged
    renamed = segments.update_segment(ctx, created["id"], changes_from({"name": "VIPs", "description": None}))
    assert renamed["version"] == 2 and renamed["status"] == "ready" and ctx.ports.queues.take(JOBS_QUEUE) == []
    changed = segments.update_segment(ctx, created["id"], changes_from({"criteria": {"tag": "local"}}))
    assert changed["version"] == 3 and changed["status"] == "evaluating" and changed["tags"] == ["local"]
    history = segments.versions(ctx, created["id"], 2, None)
    assert [v["version"] for v in history["items"]] == [3, 2] and history["next_cursor"]
    rest = segments.versions(ctx, created["id"], 2, history["next_cursor"])
    assert [v["version"] for v in rest["items"]] == [1] and rest["next_cursor"] is None


def test_a_deleted_tag_invalidates_its_segments_and_a_fix_revives_those_it_broke(ctx):
    put(ctx, 1, "vip", "local")
    base = create(ctx, {"tag": "vip"}, "Base")
    mixer = create(ctx, {"all": [{"segment": base["id"]}, {"tag": "local"}]}, "Mixer")
    run_jobs(ctx)
    release = {kind: drop for kind, _, drop in segments.DEPENDENTS}["tag"]
    ctx.ports.catalog.delete_tag("vip")
    release(ctx, "vip", "tag vip was deleted")
    broken = {s.id: s for s in ctx.ports.segments.all_segments()}
    assert broken[base["id"]].status == "invalid" and broken[base["id"]].invalid_because == "tag:vip"
    assert broken[mixer["id"]].invalid_because == f"segment:{base['id']}"
    assert members(ctx, mixer["id"]) == ["p-1"]  # an invalid segment keeps serving its last membership
    with pytest.raises(Conflict):
        segments.evaluate(ctx, mixer["id"])
    with pytest.raises(ValidationFailed):  # an invalid segment cannot be included
        create(ctx, {"segment": base["id"]}, "X")
    fixed = segments.update_segment(ctx, base["id"], changes_from({"criteria": {"tag": "local"}}))
    assert fixed["status"] == "evaluating"
    assert ctx.ports.segments.get(mixer["id"]).status == "evaluating"  # revived: it was broken only by base
    run_jobs(ctx)
    assert {s.status for s in ctx.ports.segments.all_segments()} == {"ready"}


def test_time_passing_refreshes_windows_and_the_segments_that_include_them(ctx):
    put(ctx, 1, "vip", bought_days_ago=3)
    put(ctx, 2, bought_days_ago=10)
    recent = create(ctx, {"event": "purchase", "within": "4d"}, "Recent")
    mixer = create(ctx, {"all": [{"segment": recent["id"]}, {"tag": "vip"}]}, "Recent VIPs")
    create(ctx, {"tag": "local"}, "Unrelated")
    run_jobs(ctx)
    assert members(ctx, recent["id"]) == ["p-1"] and members(ctx, mixer["id"]) == ["p-1"]
    stored = {s.id: s for s in ctx.ports.segments.all_segments()}
    assert stored[recent["id"]].time_dependent and not stored[mixer["id"]].time_dependent
    soon = system_clock() + timedelta(minutes=10)
    assert segments.refresh_time_dependent(ctx, {recent["id"]}, lambda: soon) == 0
    later = system_clock() + timedelta(days=2)
    assert segments.refresh_time_dependent(ctx, {recent["id"]}, lambda: later) == 2
    queued = ctx.ports.queues.sent[JOBS_QUEUE]
    evaluations = [m for m in queued if m["job_kind"] == evaluation.EVALUATE]
    causes = {jobs.job_view(ctx, m["job_id"])["detail"]["cause"] for m in evaluations}
    assert causes == {"refresh"}
    run_jobs(ctx)  # each job evaluates as of its start, two days on: p-1's purchase is 5 days old by then
    assert members(ctx, recent["id"]) == [] and members(ctx, mixer["id"]) == []
    exits = ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE)
    assert sorted((e["segment_id"], e["type"], e["cause"]["reason"]) for e in exits) == sorted(
        [(recent["id"], "segment.exited", "refresh"), (mixer["id"], "segment.exited", "refresh")]
    )


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
    for ordinal, tags in ((1, ("vip",)), (2, ("vip",)), (3, ("vip", "local")), (4, ("vip", "local")), (5, ("local",))):
        put(ctx, ordinal, *tags)
    a, b = create(ctx, {"tag": "vip"}, "A"), create(ctx, {"tag": "local"}, "B")
    with pytest.raises(Conflict):  # not evaluated yet
        segments.overlap(ctx, f"{a['id']},{b['id']}")
    run_jobs(ctx)
    result = segments.overlap(ctx, f"{a['id']},{b['id']}")
    assert result["pairs"] == [
        {"a": a["id"], "b": b["id"], "both": 2, "only_a": 2, "only_b": 1, "jaccard": round(2 / 5, 6)}
    ]
    with pytest.raises(ValidationFailed):
        segments.overlap(ctx, a["id"])


def test_members_page_and_export_as_csv_with_formulas_quoted(ctx):
    for ordinal in range(1, 6):
        put(ctx, ordinal, "vip", city='=HYPERLINK("x")' if ordinal == 2 else "Oslo")
    created = create(ctx, {"tag": "vip"})
    run_jobs(ctx)
    first = segments.members(ctx, created["id"], 2, None)
    rest = segments.members(ctx, created["id"], 10, first["next_cursor"])
    assert len(first["items"]) == 2 and len(rest["items"]) == 3 and rest["next_cursor"] is None
    text, cursor = segments.members_csv(ctx, created["id"], 10, None)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["id", "external_id", "email", "first_name", "last_name", "group", "tags", "attributes.city"]
    assert len(rows) == 6 and cursor is None
    assert {row[1]: row[7] for row in rows[1:]}["p-2"] == '\'=HYPERLINK("x")'  # a spreadsheet shows it, never runs it


def test_delete_always_asks_for_confirmation_and_then_removes_everything(ctx):
    put(ctx, 1, "vip")
    created = create(ctx, {"tag": "vip"})
    run_jobs(ctx)
    with pytest.raises(ConfirmationRequired):
        segments.delete_segment(ctx, created["id"], confirm=False)
    segments.delete_segment(ctx, created["id"], confirm=True)
    with pytest.raises(NotFound):
        segments.get_segment(ctx, created["id"])
    assert ctx.ports.segments.members(created["id"], created["job_id"]) == set()


def test_a_failed_evaluation_keeps_the_previous_membership(ctx):
    put(ctx, 1, "vip")
    put(ctx, 2, "vip")
    created = create(ctx, {"tag": "vip"})
    run_jobs(ctx)
    job = segments.evaluate(ctx, created["id"])
    message = ctx.ports.queues.take(JOBS_QUEUE)[0]
    jobs.fail_chunk(ctx, message, "the shard could not be read")
    jobs.fail_chunk(ctx, message, "the shard could not be read")  # a redelivered dead letter
    failed = segments.get_segment(ctx, created["id"])
    assert failed["status"] == "failed" and job["id"] in failed["status_reason"] and failed["member_count"] == 2
    assert jobs.job_view(ctx, job["id"])["detail"]["failure"] == "the shard could not be read"
    assert sorted(members(ctx, created["id"])) == ["p-1", "p-2"]
