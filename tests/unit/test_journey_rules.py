"""Journey rules (domain/journeys.py): the graph, waits, deterministic choices, re-entry and counters. No I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain import journeys as rules
from chalicelib.domain.errors import LimitExceeded, ValidationFailed
from chalicelib.domain.time_zones import check_time_zone

NOW = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)


def tag(next_step=None) -> dict:
    return {"type": "add_tag", "tag": "vip", "next": next_step}


def journey(**fields) -> rules.Journey:
    base = {
        "id": "jrn_1",
        "name": "J",
        "status": "running",
        "entry": {"type": "contact.created"},
        "reentry": {"mode": "never"},
        "exit": None,
        "holdout_percent": 0,
        "goal": None,
        "start": "a",
        "steps": {"a": tag()},
        "version": 1,
        "revision": 1,
        "created_at": "",
        "updated_at": "",
    }
    return rules.Journey(**{**base, **fields})


def field_of(problem: pytest.ExceptionInfo) -> str:
    return problem.value.details["field"]


def test_a_graph_whose_paths_all_end_passes():
    steps = {
        "a": {"type": "branch", "criteria": {"tag": "vip"}, "then": "b", "else": "c"},
        "b": {"type": "wait", "duration": "P1D", "next": "c"},
        "c": {"type": "split", "branches": [{"percent": 50, "next": "d"}, {"percent": 50, "next": None}]},
        "d": tag(),
    }
    rules.check_graph("a", steps)


@pytest.mark.parametrize(
    ("start", "steps", "field"),
    [
        ("a", {"a": tag("b"), "b": tag("a")}, "steps.b.next"),  # a cycle
        ("a", {"a": tag("a")}, "steps.a.next"),  # a step that leads to itself
        ("a", {"a": tag("nope")}, "steps.a.next"),  # a missing reference
        ("x", {"a": tag()}, "start"),
        ("a", {"a": tag(), "b": tag()}, "steps.b"),  # unreachable
        (
            "a",
            {"a": {"type": "wait_for_event", "event": "purchase", "timeout": "P1D", "then": None, "timed_out": "a"}},
            "steps.a.timed_out",
        ),
    ],
)
def test_broken_graphs_are_refused_naming_the_field(start, steps, field):
    with pytest.raises(ValidationFailed) as problem:
        rules.check_graph(start, steps)
    assert field_of(problem) == field


def test_a_thousand_step_chain_is_over_the_limit_and_a_long_legal_chain_is_checked_without_recursion():
    chain = {f"s{i}": tag(f"s{i + 1}" if i < 999 else None) for i in range(1000)}
    with pytest.raises(LimitExceeded):
        rules.check_graph("s0", chain)
    rules.check_graph("s0", {f"s{i}": tag(f"s{i + 1}" if i < 99 else None) for i in range(100)})


@given(st.integers(min_value=2, max_value=40), st.data())
def test_any_back_edge_in_a_chain_is_a_cycle(length, data):
    back_from = data.draw(st.integers(min_value=0, max_value=length - 1))
    back_to = data.draw(st.integers(min_value=0, max_value=back_from))
    steps = {f"s{i}": tag(f"s{i + 1}" if i < length - 1 else None) for i in range(length)}
    steps[f"s{back_from}"] = {
        "type": "branch",
        "criteria": {"tag": "x"},
        "then": steps[f"s{back_from}"]["next"],
        "else": f"s{back_to}",
    }
    with pytest.raises(ValidationFailed) as problem:
        rules.check_graph("s0", steps)
    assert "cycle" in problem.value.message


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"type": "wait", "duration": "PT30S", "next": None}, "steps.w.duration"),
        ({"type": "wait", "duration": "P91D", "next": None}, "steps.w.duration"),
        ({"type": "wait", "duration": "P1000000000D", "next": None}, "steps.w.duration"),
        ({"type": "wait", "next": None}, "steps.w"),
        ({"type": "wait", "duration": "P1D", "until": "09:00", "next": None}, "steps.w"),
        ({"type": "wait", "until": "25:00", "next": None}, "steps.w.until"),
        ({"type": "wait", "until": "9:00", "next": None}, "steps.w.until"),
        ({"type": "wait", "duration": "P1D", "time_zone": "contact", "next": None}, "steps.w.time_zone"),
        (
            {"type": "wait_for_event", "event": "x", "timeout": "P1Y", "then": None, "timed_out": None},
            "steps.w.timeout",
        ),
        (
            {"type": "split", "branches": [{"percent": 50, "next": None}, {"percent": 40, "next": None}]},
            "steps.w.branches",
        ),
    ],
)
def test_step_rules_name_the_field(step, field):
    with pytest.raises(ValidationFailed) as problem:
        rules.check_step("w", step)
    assert field_of(problem) == field


def test_waits_end_after_their_duration_or_at_the_next_time_of_day_in_the_zone():
    assert rules.wait_due({"type": "wait", "duration": "P3D"}, NOW, None, None) == NOW + timedelta(days=3)
    timeout = {"type": "wait_for_event", "timeout": "PT2H"}
    assert rules.wait_due(timeout, NOW, None, None) == NOW + timedelta(hours=2)
    nine = {"type": "wait", "until": "09:00", "time_zone": "tenant"}
    # 10:30 UTC is past 09:00 UTC: tomorrow; in Los Angeles it is 02:30, so 09:00 there today (17:00 UTC)
    assert rules.wait_due(nine, NOW, "UTC", None) == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    assert rules.wait_due(nine, NOW, "America/Los_Angeles", None) == datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
    by_contact = {**nine, "time_zone": "contact"}
    assert rules.wait_due(by_contact, NOW, "UTC", "Asia/Tokyo") == datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    assert rules.wait_due(by_contact, NOW, "UTC", None) == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # the tenant's


def test_time_zone_names_are_iana_names():
    assert check_time_zone("Europe/Paris", "time_zone") == "Europe/Paris"
    for bad in ("Mars/Olympus", "../../etc/passwd", "", 5, None, "europe/paris"):
        with pytest.raises(ValidationFailed):
            check_time_zone(bad, "time_zone")


def test_holdout_and_splits_are_deterministic_and_near_their_shares():
    contacts = [f"ctc_{i:06d}" for i in range(10_000)]
    held = [c for c in contacts if rules.in_holdout("jrn_1", c, 10)]
    assert held == [c for c in contacts if rules.in_holdout("jrn_1", c, 10)]
    assert abs(len(held) / len(contacts) - 0.10) < 0.015
    assert not any(rules.in_holdout("jrn_1", c, 0) for c in contacts)
    branches = [{"percent": 30, "next": "a"}, {"percent": 70, "next": "b"}]
    chosen = [rules.split_choice("jrn_1", "split", c, branches) for c in contacts]
    assert abs(chosen.count("a") / len(chosen) - 0.30) < 0.015
    assert chosen == [rules.split_choice("jrn_1", "split", c, branches) for c in contacts]


def test_reentry_rules():
    done = rules.Position("jrn_1", "ctc_1", 1, 1, rules.DONE, None, "", "2026-11-01T00:00:00Z", "first")
    inside = rules.Position("jrn_1", "ctc_1", 1, 1, rules.WAITING, "a", "", "2026-11-01T00:00:00Z", "first")
    assert rules.may_enter(journey(), None, "c", NOW)
    assert not rules.may_enter(journey(), done, "c", NOW)  # never
    assert not rules.may_enter(journey(reentry={"mode": "always"}), inside, "c", NOW)  # not while inside
    assert rules.may_enter(journey(reentry={"mode": "always"}), done, "c", NOW)
    assert not rules.may_enter(journey(reentry={"mode": "always"}), done, "first", NOW)  # the same cause again
    assert rules.may_enter(journey(reentry={"mode": "after", "after": "P30D"}), done, "c", NOW)
    assert not rules.may_enter(journey(reentry={"mode": "after", "after": "P31D"}), done, "c", NOW)


def test_moves_count_the_step_left_and_the_step_reached():
    start = rules.entered(journey(), "ctc_1", None, "cause", NOW)
    assert rules.step_counts(None, start) == {("a", "entered"): 1}
    assert rules.journey_counts(None, start) == {"entered": 1}
    waiting = rules.moved(start, "a", NOW, "waiting", state=rules.WAITING, due_at=NOW)
    assert rules.step_counts(start, waiting) == {}
    done = rules.moved(waiting, None, NOW, "completed")
    assert rules.step_counts(waiting, done) == {("a", "completed"): 1} and done.state == rules.DONE
    exited = rules.moved(start, None, NOW, "exited", state=rules.EXITED)
    assert rules.step_counts(start, exited) == {("a", "exited"): 1}
    assert [h["outcome"] for h in done.history] == ["entered", "waiting", "completed"]
    kept_out = next(c for c in (f"ctc_{i}" for i in range(100)) if rules.in_holdout("jrn_x", c, 50))
    held = rules.entered(journey(holdout_percent=50, id="jrn_x"), kept_out, None, "c", NOW)
    assert held.holdout and held.finished and held.step is None
    assert rules.step_counts(None, held) == {} and rules.journey_counts(None, held) == {"holdout_entered": 1}


def test_a_goal_counts_once_within_its_window_after_entering():
    j = journey(goal={"event": "purchase", "within": "P14D"})
    position = rules.entered(j, "ctc_1", None, "c", NOW)
    assert rules.converts(j, position, {"type": "purchase", "at": "2026-12-05T00:00:00Z"})
    assert not rules.converts(j, position, {"type": "purchase", "at": "2026-12-20T00:00:00Z"})
    assert not rules.converts(j, position, {"type": "signup", "at": "2026-12-05T00:00:00Z"})
    assert not rules.converts(j, position, {"type": "purchase", "at": "2026-11-30T00:00:00Z"})  # before entering


def test_a_contact_moves_onto_the_moved_to_version_only_from_an_older_one_at_a_step_of_the_same_kind():
    waiting = rules.Position("jrn_1", "ctc_1", 1, 1, rules.WAITING, "a", "", "2026-11-01T00:00:00Z", "first")
    assert rules.adopted(waiting, "wait", "wait", 2)
    assert not rules.adopted(waiting, "wait", "wait_for_event", 2)  # the step changed kind
    assert not rules.adopted(waiting, "wait", None, 2)  # the step is gone
    assert not rules.adopted(waiting, "wait", "wait", None)  # the edit did not ask
    assert not rules.adopted(waiting, "wait", "wait", 1)  # already on it
    done = rules.Position("jrn_1", "ctc_1", 1, 1, rules.DONE, None, "", "2026-11-01T00:00:00Z", "first")
    assert not rules.adopted(done, None, None, 2)


def test_an_event_came_after_a_moment_when_recorded_after_it_and_not_a_backfill():
    began = "2026-12-01T10:00:00.700Z"
    to_the_second = {"type": "purchase", "at": "2026-12-01T10:00:00Z"}  # a client's clock, to the second
    assert rules.came_after(began, to_the_second, recorded_at="2026-12-01T10:00:01.200Z")
    assert not rules.came_after(began, to_the_second, recorded_at=None)  # when it was recorded is unknown: strict
    assert not rules.came_after(began, to_the_second, recorded_at="2026-12-01T10:00:00.100Z")  # the entering one
    backfill = {"type": "purchase", "at": "2026-11-01T10:00:00Z"}
    assert not rules.came_after(began, backfill, recorded_at="2026-12-01T10:00:05.000Z")
    assert rules.came_after(began, {"type": "visit"}, recorded_at=None)


def test_a_journey_listens_to_its_goal_and_the_events_it_waits_for_and_an_edited_one_to_all():
    journey = rules.Journey(
        id="jrn_1", name="j", status=rules.RUNNING, entry={"type": "contact.created"}, reentry={"mode": "never"},
        exit=None, holdout_percent=0, goal={"event": "purchase", "within": "P7D"}, start="w",
        steps={"w": {"type": rules.WAIT_FOR_EVENT, "event": "visit", "timeout": "P1D", "then": None,
                     "timed_out": None}},
        version=1, revision=1, created_at="", updated_at="",
    )  # fmt: skip
    assert rules.listens_to(journey, {"visit"}) and rules.listens_to(journey, {"purchase", "x"})
    assert not rules.listens_to(journey, {"login"})
    assert rules.listens_to(replace(journey, version=2), {"login"})
