"""Journeys (services/journeys.py, journey_flow.py) on in-memory ports, with an injected clock: declaring them,
entering, waiting days in no time, wait-until-event, branches, splits, holdouts, exits, versions, pauses —
with every message delivered twice and the minute drain firing twice."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.contacts import contact_id_for
from chalicelib.domain.errors import LimitExceeded, ValidationFailed
from chalicelib.resources import JOURNEYS_QUEUE
from chalicelib.services import evaluation, jobs, journey_flow, journeys, shards
from chalicelib.services.context import TenantContext
from tests.support.fakes import InMemoryCatalog, fake_context
from tests.support.on_fakes import create, put, run_jobs


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(autouse=True)
def evaluation_kind():
    jobs.register_kinds(evaluation.JOB_KINDS | shards.JOB_KINDS)


@pytest.fixture
def ctx() -> TenantContext:
    settings = {"sender": {"email": "news@example.com"}, "send_rate_per_second": 1000}
    return fake_context("ten_1", catalog=InMemoryCatalog(tags={"vip", "engaged"}), settings=settings)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def created(ordinal: int) -> dict:
    return {
        "kind": "contact.changed",
        "tenant_id": "ten_1",
        "contact_id": contact_id_for(ordinal),
        "version": 1,
        "change": "created",
        "tags_added": [],
        "events": [],
        "depth": 0,
    }


def purchased(ordinal: int, clock: Clock, event_id: str = "e1") -> dict:
    event = {"id": f"{event_id}-{ordinal}", "type": "purchase", "amount": 10, "at": to_rfc3339(clock())}
    return {**created(ordinal), "change": "updated", "version": 2, "events": [event]}


def welcome(**fields) -> dict:
    """The issue's example: welcome, wait for a purchase 3 days, reward buyers; tag VIPs; split the rest."""
    return {
        "name": "Welcome partners",
        "entry": {"type": "contact.created"},
        "holdout_percent": 10,
        "goal": {"event": "purchase", "within": "P14D"},
        "start": "welcome",
        "steps": {
            "welcome": {
                "type": "send_email",
                "subject": "Hi {{ contact.first_name }}",
                "text": "Welcome",
                "next": "wait",
            },
            "wait": {
                "type": "wait_for_event",
                "event": "purchase",
                "timeout": "P3D",
                "then": "reward",
                "timed_out": "vip?",
            },
            "vip?": {"type": "branch", "criteria": {"tag": "vip"}, "then": "tag", "else": "split"},
            "split": {"type": "split", "branches": [{"percent": 50, "next": "tip"}, {"percent": 50, "next": None}]},
            "tip": {"type": "send_email", "subject": "A tip", "text": "Try this", "next": None},
            "tag": {"type": "add_tag", "tag": "engaged", "next": None},
            "reward": {"type": "reward", "amount": 20, "currency": "USD", "next": None},
        },
        **fields,
    }


def drain(ctx: TenantContext, clock: Clock, times: int = 2) -> int:
    """The minute schedule firing ``times`` (each queues the waits over), then every wake message delivered
    twice in shuffled order."""
    messages = []
    for _ in range(times):
        journey_flow.wake_due(ctx.ports.journeys.due(to_rfc3339(clock())), lambda tenant_id: ctx)
        messages += ctx.ports.queues.take(JOURNEYS_QUEUE)
    deliveries = messages * 2
    random.Random(7).shuffle(deliveries)
    return sum(journey_flow.handle(ctx, message, clock) for message in deliveries)


def enter_all(ctx: TenantContext, clock: Clock, ordinals: range) -> None:
    deliveries = [created(n) for n in ordinals] * 2
    random.Random(3).shuffle(deliveries)
    for message in deliveries:
        journey_flow.on_contact_change(ctx, message, clock)


def mails_to(ctx: TenantContext) -> list[tuple[str, str]]:
    return [(mail.to, mail.subject) for mail in ctx.ports.mailer.sent]


def test_the_welcome_journey_over_ten_thousand_entrants_does_each_action_once(ctx, clock):
    entrants = range(1, 10_001)
    for n in entrants:
        put(ctx, n, *(["vip"] if n % 4 == 0 else []))
    made = journeys.create_journey(ctx, welcome(), clock)
    enter_all(ctx, clock, entrants)
    stats = journeys.stats(ctx, made["id"])
    held = stats["holdout"]["entered"]
    assert stats["entered"] + held == 10_000 and abs(held / 10_000 - 0.10) <= 0.015
    welcomed = [to for to, subject in mails_to(ctx) if subject.startswith("Hi")]
    assert len(welcomed) == len(set(welcomed)) == stats["entered"]
    buyers = [n for n in entrants if n % 3 == 0]
    clock.advance(days=1)
    for message in [purchased(n, clock) for n in buyers] * 2:  # each purchase delivered twice
        journey_flow.on_contact_change(ctx, message, clock)
    assert drain(ctx, clock) == 0  # nothing is due after one day
    clock.advance(days=2, minutes=1)
    drain(ctx, clock)
    stats = journeys.stats(ctx, made["id"])
    treated = {
        n for n in entrants if journeys.contact_position(ctx, made["id"], contact_id_for(n))["state"] != "holdout"
    }
    treated_buyers = treated & set(buyers)
    rewarded = [n for n in entrants if ctx.ports.engagements.all_rewards(contact_id_for(n), n)]
    assert sorted(rewarded) == sorted(treated_buyers)  # a buyer took "then", once; no one else
    assert all(len(ctx.ports.engagements.all_rewards(contact_id_for(n), n)) == 1 for n in rewarded)
    assert stats["steps"]["reward"]["entered"] == len(treated_buyers)
    assert stats["steps"]["vip?"]["entered"] == len(treated) - len(treated_buyers)  # the rest timed out, none both
    assert stats["steps"]["tag"]["entered"] == len({n for n in treated - treated_buyers if n % 4 == 0})
    tips = [to for to, subject in mails_to(ctx) if subject == "A tip"]
    assert len(tips) == len(set(tips)) == stats["steps"]["tip"]["entered"]
    assert abs(stats["steps"]["tip"]["entered"] / stats["steps"]["split"]["entered"] - 0.5) < 0.05
    for step in stats["steps"].values():
        assert step["waiting"] == 0 and step["entered"] == step["completed"] + step["exited"]
    assert stats["converted"] == len(treated_buyers)
    assert stats["steps"]["wait"]["converted"] == len(treated_buyers)  # they bought while it waited for them
    assert stats["holdout"]["converted"] == len(set(buyers) - treated)


def test_a_contact_shows_where_it_is_and_its_history(ctx, clock):
    put(ctx, 1)
    made = journeys.create_journey(ctx, welcome(holdout_percent=0), clock)
    journey_flow.on_contact_change(ctx, created(1), clock)
    here = journeys.contact_position(ctx, made["id"], contact_id_for(1))
    assert (here["state"], here["step"], here["waiting_for"]) == ("waiting", "wait", "purchase")
    assert here["due_at"] == to_rfc3339(clock() + timedelta(days=3))
    clock.advance(hours=5)
    journey_flow.on_contact_change(ctx, purchased(1, clock), clock)
    here = journeys.contact_position(ctx, made["id"], contact_id_for(1))
    assert here["state"] == "done" and here["converted_at"] == to_rfc3339(clock())
    assert [(h["step"], h["outcome"]) for h in here["history"]] == [
        (None, "entered"),
        ("welcome", "completed"),
        ("wait", "waiting"),
        ("wait", "happened"),
        ("reward", "completed"),
    ]
    with pytest.raises(Exception, match="has not entered"):
        journeys.contact_position(ctx, made["id"], contact_id_for(2))


def test_an_event_before_the_wait_began_does_not_end_it(ctx, clock):
    put(ctx, 1)
    made = journeys.create_journey(ctx, welcome(holdout_percent=0), clock)
    journey_flow.on_contact_change(ctx, created(1), clock)
    late_backfill = purchased(1, clock)
    late_backfill["events"][0]["at"] = to_rfc3339(clock() - timedelta(days=1))
    journey_flow.on_contact_change(ctx, late_backfill, clock)
    assert journeys.contact_position(ctx, made["id"], contact_id_for(1))["state"] == "waiting"


def test_a_purchase_stamped_to_the_second_right_after_the_wait_began_ends_it_and_converts(ctx, clock):
    put(ctx, 1)
    clock.advance(seconds=0.6)  # the wait begins at …:00.600
    made = journeys.create_journey(ctx, welcome(holdout_percent=0), clock)
    journey_flow.on_contact_change(ctx, created(1), clock)
    message = purchased(1, clock)
    message["events"][0]["at"] = to_rfc3339(clock().replace(microsecond=0))  # …:00.000, as clients send it
    clock.advance(seconds=1)
    message["at"] = to_rfc3339(clock())  # recorded after the wait began
    journey_flow.on_contact_change(ctx, message, clock)
    here = journeys.contact_position(ctx, made["id"], contact_id_for(1))
    assert here["state"] == "done" and here["history"][-2]["outcome"] == "happened"
    assert journeys.stats(ctx, made["id"])["converted"] == 1


def test_exit_criteria_are_checked_before_each_step(ctx, clock):
    put(ctx, 1)
    put(ctx, 2, "vip")
    body = {
        "name": "Nudge",
        "entry": {"type": "contact.created"},
        "exit": {"tag": "vip"},
        "start": "wait",
        "steps": {
            "wait": {"type": "wait", "duration": "P1D", "next": "tag"},
            "tag": {"type": "add_tag", "tag": "engaged", "next": None},
        },
    }
    made = journeys.create_journey(ctx, body, clock)
    enter_all(ctx, clock, range(1, 3))
    assert journeys.contact_position(ctx, made["id"], contact_id_for(2))["state"] == "exited"
    put(ctx, 1, "vip")  # becomes a VIP while it waits
    clock.advance(days=1, minutes=1)
    drain(ctx, clock)
    assert journeys.contact_position(ctx, made["id"], contact_id_for(1))["state"] == "exited"
    stats = journeys.stats(ctx, made["id"])["steps"]
    assert (stats["wait"]["exited"], stats["wait"]["completed"], stats["tag"]["entered"]) == (1, 1, 1)
    assert stats["tag"]["exited"] == 1 and "engaged" not in ctx.ports.contacts.get_contact(contact_id_for(1)).tags


def test_a_wait_until_a_time_of_day_uses_the_contacts_zone(ctx, clock):
    put(ctx, 1)
    ctx.ports.contacts.put(
        ctx.ports.contacts.get_contact(contact_id_for(1)).__class__(
            id=contact_id_for(1), ordinal=1, email="p1@example.com", attributes={"time_zone": "Asia/Tokyo"}
        ),
        [],
    )
    body = {
        "name": "Morning",
        "entry": {"type": "contact.created"},
        "start": "nine",
        "steps": {"nine": {"type": "wait", "until": "09:00", "time_zone": "contact", "next": None}},
    }
    made = journeys.create_journey(ctx, body, clock)
    journey_flow.on_contact_change(ctx, created(1), clock)
    # 10:00 UTC is 19:00 in Tokyo: 09:00 there tomorrow is 00:00 UTC
    assert journeys.contact_position(ctx, made["id"], contact_id_for(1))["due_at"] == "2026-12-02T00:00:00.000Z"


def test_re_entry_after_a_wait_and_a_paused_journey_holds_everyone(ctx, clock):
    put(ctx, 1)
    body = {
        "name": "Tag",
        "entry": {"type": "event.received", "event_type": "purchase"},
        "reentry": {"mode": "after", "after": "P7D"},
        "start": "wait",
        "steps": {"wait": {"type": "wait", "duration": "PT1H", "next": None}},
    }
    made = journeys.create_journey(ctx, body, clock)
    journey_flow.on_contact_change(ctx, purchased(1, clock, "a"), clock)
    journeys.set_status(ctx, made["id"], "paused", clock)
    ctx.journeys = ctx.ports.journeys.all_journeys()  # a new batch sees the pause
    clock.advance(hours=2)
    assert drain(ctx, clock) == 0
    journey_flow.on_contact_change(ctx, purchased(1, clock, "b"), clock)  # no entry while paused
    journeys.set_status(ctx, made["id"], "running", clock)
    ctx.journeys = ctx.ports.journeys.all_journeys()
    assert drain(ctx, clock) == 1
    journey_flow.on_contact_change(ctx, purchased(1, clock, "c"), clock)  # too soon to enter again
    clock.advance(days=8)
    journey_flow.on_contact_change(ctx, purchased(1, clock, "d"), clock)
    here = journeys.contact_position(ctx, made["id"], contact_id_for(1))
    assert (here["entry"], here["state"]) == (2, "waiting")
    assert journeys.stats(ctx, made["id"])["entered"] == 2


def test_an_edit_makes_a_version_and_contacts_inside_finish_on_theirs(ctx, clock):
    put(ctx, 1)
    put(ctx, 2)
    body = {
        "name": "Two",
        "entry": {"type": "contact.created"},
        "start": "wait",
        "steps": {
            "wait": {"type": "wait", "duration": "P1D", "next": "old"},
            "old": {"type": "add_tag", "tag": "vip", "next": None},
        },
    }
    made = journeys.create_journey(ctx, body, clock)
    journey_flow.on_contact_change(ctx, created(1), clock)
    steps = {
        "wait": {"type": "wait", "duration": "P1D", "next": "new"},
        "new": {"type": "add_tag", "tag": "engaged", "next": None},
    }
    edited = journeys.update_journey(ctx, made["id"], {"steps": steps}, clock)
    assert edited["version"] == 2
    assert journeys.update_journey(ctx, made["id"], {"name": "Renamed"}, clock)["version"] == 2
    ctx.journeys = ctx.ports.journeys.all_journeys()
    journey_flow.on_contact_change(ctx, created(2), clock)
    clock.advance(days=1, minutes=1)
    drain(ctx, clock)
    assert ctx.ports.contacts.get_contact(contact_id_for(1)).tags == {"vip"}  # version 1
    assert ctx.ports.contacts.get_contact(contact_id_for(2)).tags == {"engaged"}  # version 2
    assert set(journeys.stats(ctx, made["id"])["steps"]) == {"wait", "new", "old"}


def test_an_edit_can_move_contacts_inside_onto_the_new_version_where_their_step_is_in_it(ctx, clock):
    put(ctx, 1)
    body = {
        "name": "Moving",
        "entry": {"type": "event.received", "event_type": "purchase"},
        "start": "first",
        "steps": {
            "first": {"type": "wait", "duration": "P1D", "next": "old"},
            "old": {"type": "add_tag", "tag": "vip", "next": None},
        },
    }
    made = journeys.create_journey(ctx, body, clock)
    journey_flow.on_contact_change(ctx, purchased(1, clock), clock)  # waits at "first"
    steps = {"first": {"type": "wait", "duration": "P1D", "next": "new"},
             "new": {"type": "add_tag", "tag": "engaged", "next": None}}  # fmt: skip
    moved = journeys.update_journey(ctx, made["id"], {"steps": steps, "move_contacts": True}, clock)
    assert (moved["version"], moved["moved_to"]) == (2, 2)
    ctx.journeys = ctx.ports.journeys.all_journeys()
    clock.advance(days=1, minutes=1)
    drain(ctx, clock)
    assert ctx.ports.contacts.get_contact(contact_id_for(1)).tags == {"engaged"}  # moved: version 2's next step
    assert journeys.contact_position(ctx, made["id"], contact_id_for(1))["version"] == 2
    assert journeys.update_journey(ctx, made["id"], {"name": "Renamed", "move_contacts": True}, clock)["moved_to"] == 2


def test_a_contact_at_a_step_the_new_version_lacks_finishes_on_its_own(ctx, clock):
    put(ctx, 1)
    body = {
        "name": "Moving",
        "entry": {"type": "contact.created"},
        "start": "second",
        "steps": {
            "second": {"type": "wait_for_event", "event": "visit", "timeout": "P1D", "then": None, "timed_out": "old"},
            "old": {"type": "add_tag", "tag": "vip", "next": None},
        },
    }
    made = journeys.create_journey(ctx, body, clock)
    journey_flow.on_contact_change(ctx, created(1), clock)
    steps = {"second": {"type": "wait", "duration": "P1D", "next": "new"},  # the same id, another kind of step
             "new": {"type": "add_tag", "tag": "engaged", "next": None}}  # fmt: skip
    journeys.update_journey(ctx, made["id"], {"steps": steps, "start": "second", "move_contacts": True}, clock)
    ctx.journeys = ctx.ports.journeys.all_journeys()
    clock.advance(days=1, minutes=1)
    drain(ctx, clock)
    assert ctx.ports.contacts.get_contact(contact_id_for(1)).tags == {"vip"}
    assert journeys.contact_position(ctx, made["id"], contact_id_for(1))["version"] == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"start": "nope"}, "start"),
        (
            {"steps": {"welcome": {"type": "add_tag", "tag": "vip", "next": "welcome"}}, "start": "welcome"},
            "steps.welcome.next",
        ),
        (
            {"steps": {"welcome": {"type": "add_tag", "tag": "missing", "next": None}}, "start": "welcome"},
            "steps.welcome.tag",
        ),
        (
            {"steps": {"welcome": {"type": "announce", "announcement_id": "ann_x", "next": None}}, "start": "welcome"},
            "steps.welcome.announcement_id",
        ),
        (
            {
                "steps": {
                    "welcome": {"type": "branch", "criteria": {"segment": "seg_gone"}, "then": None, "else": None}
                },
                "start": "welcome",
            },
            "steps.welcome.criteria.segment",
        ),
        ({"entry": {"type": "segment.entered"}}, "entry.segments"),
        ({"entry": {"type": "tag.added", "tag": "nope"}}, "entry.tag"),
        ({"entry": {"type": "event.received"}}, "entry.event_type"),
        ({"reentry": {"mode": "after"}}, "reentry.after"),
        ({"reentry": {"mode": "after", "after": "P100000D"}}, "reentry.after"),
        ({"goal": {"event": "purchase", "within": "P0D"}}, "goal.within"),
        ({"exit": {"nonsense": 1}}, "exit"),
    ],
)
def test_invalid_journeys_are_refused_naming_the_field(ctx, clock, change, field):
    with pytest.raises(ValidationFailed) as problem:
        journeys.create_journey(ctx, {**welcome(), **change}, clock)
    assert problem.value.details["field"].startswith(field)
    assert ctx.ports.journeys.all_journeys() == []


def test_the_segment_limit_applies_to_a_journey(ctx, clock):
    ids = []
    for i in range(11):
        ids.append(create(ctx, {"tag": "vip"}, f"S{i}")["id"])
    steps = {"b": {"type": "branch", "criteria": {"or": [{"segment": s} for s in ids[1:]]}, "then": None, "else": None}}
    with pytest.raises(LimitExceeded):
        journeys.create_journey(
            ctx,
            {"name": "x", "entry": {"type": "segment.entered", "segments": ids[:1]}, "start": "b", "steps": steps},
            clock,
        )


def test_a_segment_entry_enters_members_once_and_deleting_the_segment_pauses_the_journey(ctx, clock, monkeypatch):
    from collections import defaultdict

    from chalicelib.services import dependents, segments

    # the composition registers every service's dependents; here only the journeys'
    monkeypatch.setattr(dependents, "_finders", defaultdict(list))
    monkeypatch.setattr(dependents, "_releases", defaultdict(list))
    dependents.register(journeys.DEPENDENTS)

    put(ctx, 1, "vip")
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    made = journeys.create_journey(
        ctx,
        {
            "name": "Joined",
            "entry": {"type": "segment.entered", "segments": [vips["id"]]},
            "start": "t",
            "steps": {"t": {"type": "add_tag", "tag": "engaged", "next": None}},
        },
        clock,
    )
    event = {
        "id": "mev_1",
        "type": "segment.entered",
        "tenant_id": "ten_1",
        "segment_id": vips["id"],
        "contact_id": contact_id_for(1),
        "cause": {"depth": 0},
        "at": "2026-12-01T10:00:00Z",
    }
    assert journey_flow.on_membership_event(ctx, event, clock) == 1
    assert journey_flow.on_membership_event(ctx, event, clock) == 0  # redelivered
    assert journeys.stats(ctx, made["id"])["steps"]["t"]["completed"] == 1
    segments.delete_segment(ctx, vips["id"], confirm=True)
    after = journeys.get_journey(ctx, made["id"])
    assert after["status"] == "paused" and "deleted" in after["status_reason"]
    with pytest.raises(ValidationFailed):
        journeys.set_status(ctx, made["id"], "running", clock)  # it still names the gone segment


def test_a_schedule_entry_enters_its_segments_members_once_per_run(ctx, clock):
    for n in range(1, 251):
        put(ctx, n, *(["vip"] if n % 2 else []))
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    body = {"name": "Weekly", "entry": {"type": "schedule", "expression": "rate(7 days)", "segments": [vips["id"]]},
            "reentry": {"mode": "always"}, "start": "tag",
            "steps": {"tag": {"type": "add_tag", "tag": "engaged", "next": None}}}  # fmt: skip
    made = journeys.create_journey(ctx, body, clock)
    assert made["next_run_at"] == "2026-12-08T10:00:00.000Z"
    journeys_port = ctx.ports.journeys

    def minute(times: int = 2) -> int:
        """The minute schedule firing ``times``, then every message delivered twice in shuffled order."""
        for _ in range(times):
            journey_flow.enter_scheduled(journeys_port.due_scheduled(to_rfc3339(clock())), lambda t: ctx, clock)
        deliveries = ctx.ports.queues.take(JOURNEYS_QUEUE) * 2
        random.Random(11).shuffle(deliveries)
        return sum(journey_flow.handle(ctx, message, clock) for message in deliveries)

    assert minute() == 0  # not yet
    clock.advance(days=7)
    assert minute() == 125  # the members, once each, though the schedule fired twice
    assert journeys.get_journey(ctx, made["id"])["next_run_at"] == "2026-12-15T10:00:00.000Z"
    assert journeys.stats(ctx, made["id"])["steps"]["tag"]["completed"] == 125
    assert minute() == 0
    clock.advance(days=7)
    assert minute(times=1) == 125  # the next run is another cause: re-entry "always" lets them in again
    here = journeys.contact_position(ctx, made["id"], contact_id_for(1))
    assert (here["entry"], here["state"]) == (2, "done")
    journeys.set_status(ctx, made["id"], "paused", clock)
    clock.advance(days=30)
    assert minute() == 0  # paused: no run, and none is owed on resume
    resumed = journeys.set_status(ctx, made["id"], "running", clock)
    assert resumed["next_run_at"] == to_rfc3339(clock.now + timedelta(days=7))


def test_an_email_that_must_wait_stops_the_run_where_it_is_and_the_minute_drain_takes_it_up(ctx, clock, monkeypatch):
    from chalicelib.services import actions

    put(ctx, 1)
    body = {"name": "Tag then mail", "entry": {"type": "contact.created"}, "start": "tag",
            "steps": {"tag": {"type": "add_tag", "tag": "engaged", "next": "hello"},
                      "hello": {"type": "send_email", "subject": "Hello", "text": "Hi", "next": None}}}  # fmt: skip
    made = journeys.create_journey(ctx, body, clock)
    real = actions._send_email
    monkeypatch.setattr(actions, "_send_email", lambda *args: (_ for _ in ()).throw(actions.SendLater("busy")))
    with pytest.raises(actions.SendLater):
        journey_flow.on_contact_change(ctx, created(1), clock)
    here = journeys.contact_position(ctx, made["id"], contact_id_for(1))
    assert (here["state"], here["step"]) == ("active", "hello") and here["due_at"] is not None  # the tag is written
    assert journeys.stats(ctx, made["id"])["steps"]["tag"]["completed"] == 1
    monkeypatch.setattr(actions, "_send_email", real)
    assert drain(ctx, clock) == 0  # not before its retry time
    clock.advance(minutes=2)
    assert drain(ctx, clock) == 1  # the minute drain (firing twice, each message twice) sends it once
    journey_flow.on_contact_change(ctx, created(1), clock)  # the original message, delivered again: nothing
    assert mails_to(ctx) == [("p1@example.com", "Hello")]
    here = journeys.contact_position(ctx, made["id"], contact_id_for(1))
    assert here["state"] == "done" and journeys.stats(ctx, made["id"])["steps"]["hello"]["completed"] == 1


def test_entry_conditions_let_in_only_the_contacts_meeting_them_then(ctx, clock):
    put(ctx, 1, "vip")
    put(ctx, 2)
    entry = {"type": "event.received", "event_type": "purchase", "conditions": {"tag": "vip"}}
    body = {"name": "VIP buyers", "entry": entry, "start": "tag",
            "steps": {"tag": {"type": "add_tag", "tag": "engaged", "next": None}}}  # fmt: skip
    made = journeys.create_journey(ctx, body, clock)
    for n in (1, 2):
        journey_flow.on_contact_change(ctx, purchased(n, clock), clock)
    assert journeys.stats(ctx, made["id"])["entered"] == 1
    assert "engaged" in ctx.ports.contacts.get_contact(contact_id_for(1)).tags
    assert "engaged" not in ctx.ports.contacts.get_contact(contact_id_for(2)).tags
    with pytest.raises(ValidationFailed) as refused:
        journeys.update_journey(ctx, made["id"], {"entry": {**body["entry"], "conditions": {"tag": "nope"}}}, clock)
    assert refused.value.details["field"].startswith("entry.conditions")
