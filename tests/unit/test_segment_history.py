"""A segment's daily size history (domain/segments.py ``history_series``, services/segment_history.py) on the
fakes: each transition counted once on its own day under redelivery in any order, members after evaluations,
days without changes carried, deleted segments forgotten. No moto."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import pytest

from chalicelib.domain.errors import NotFound, ValidationFailed
from chalicelib.domain.membership import transition_event
from chalicelib.domain.segments import SizePoint, history_series
from chalicelib.services import evaluation, jobs, segment_history, segments, shards
from chalicelib.services.context import TenantContext
from tests.support.fakes import InMemoryCatalog, fake_context
from tests.support.on_fakes import create, put, run_jobs

TODAY = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def test_days_without_a_point_carry_the_members_of_the_day_before():
    points = [SizePoint("2026-11-25", 10, 3, 0), SizePoint("2026-11-28", None, 1, 2), SizePoint("2026-11-29", 12, 2)]
    series = history_series(points, date(2026, 12, 1), 5, current_members=15)
    assert series == [
        {"date": "2026-11-27", "members": 10, "entered": 0, "exited": 0},  # carried from the 25th
        {"date": "2026-11-28", "members": 10, "entered": 1, "exited": 2},  # counts without a member count
        {"date": "2026-11-29", "members": 12, "entered": 2, "exited": 0},
        {"date": "2026-11-30", "members": 12, "entered": 0, "exited": 0},
        {"date": "2026-12-01", "members": 15, "entered": 0, "exited": 0},  # today: the current count
    ]


def test_days_before_the_first_point_are_left_out():
    assert history_series([SizePoint("2026-11-30", 4, 4, 0)], date(2026, 12, 1), 30, current_members=5) == [
        {"date": "2026-11-30", "members": 4, "entered": 4, "exited": 0},
        {"date": "2026-12-01", "members": 5, "entered": 0, "exited": 0},
    ]
    assert history_series([], date(2026, 12, 1), 30, current_members=None) == []


@pytest.fixture(autouse=True)
def evaluation_kind():
    jobs.register_kinds(evaluation.JOB_KINDS | shards.JOB_KINDS)


@pytest.fixture
def ctx() -> TenantContext:
    return fake_context(catalog=InMemoryCatalog(tags={"vip"}))


def _event(ctx: TenantContext, segment_id: str, ordinal: int, enter: bool, sequence: str, at: str) -> dict:
    return transition_event(ctx.tenant_id, segment_id, f"ctc_{ordinal}", enter, sequence, {"change": "t"}, at)


def test_each_transition_counts_once_on_its_own_day_whatever_the_delivery_order(ctx):
    put(ctx, 1, "vip")
    segment = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    events = [
        _event(ctx, segment["id"], 2, True, "1", "2026-11-30T23:59:59Z"),
        _event(ctx, segment["id"], 3, True, "1", "2026-12-01T00:00:01Z"),
        _event(ctx, segment["id"], 3, False, "2", "2026-12-01T08:00:00Z"),
        _event(ctx, segment["id"], 4, True, "1", "2026-12-01T09:00:00Z"),
    ]
    delivered = events + events  # at least once, shuffled
    random.Random(7).shuffle(delivered)
    counted = [segment_history.on_membership_event(ctx, event, clock=lambda: TODAY) for event in delivered]
    assert sum(counted) == len(events)
    points = {p.date: p for p in ctx.ports.segments.size_points(segment["id"])}
    assert (points["2026-11-30"].entered, points["2026-11-30"].exited) == (1, 0)
    assert (points["2026-12-01"].entered, points["2026-12-01"].exited) == (2, 1)


def test_events_of_a_segment_that_is_gone_are_not_counted(ctx):
    event = _event(ctx, "seg_gone", 1, True, "1", "2026-12-01T09:00:00Z")
    assert segment_history.on_membership_event(ctx, event) is False


def test_an_evaluation_records_todays_members_and_the_route_reads_the_series(ctx):
    for ordinal in (1, 2, 3):
        put(ctx, ordinal, "vip")
    segment = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    today = datetime.now(UTC).date().isoformat()
    assert next(p for p in ctx.ports.segments.size_points(segment["id"]) if p.date == today).members == 3
    series = segments.size_history(ctx, segment["id"], "7")["items"]
    assert series == [{"date": today, "members": 3, "entered": 0, "exited": 0}]
    for bad in ("0", "401", "x", "-1"):
        with pytest.raises(ValidationFailed) as refused:
            segments.size_history(ctx, segment["id"], bad)
        assert refused.value.details["field"] == "days"
    with pytest.raises(NotFound):
        segments.size_history(ctx, "seg_nope", None)


def test_a_deleted_segment_forgets_its_history(ctx):
    put(ctx, 1, "vip")
    segment = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    ctx.ports.segments.delete(segment["id"])
    assert ctx.ports.segments.size_points(segment["id"]) == []
