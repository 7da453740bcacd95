"""Journeys through the API, the real queues and the due-time index (moto): the welcome journey with every
message delivered twice and the minute drain firing twice, wait-until-event, the schedule handlers under the
real clock, pause and resume, versions, dependents, roles, tenant isolation and hostile definitions."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.composition import due_journeys, scheduled_journeys, tenant_context
from chalicelib.domain.clock import to_rfc3339
from chalicelib.http.api import REGISTRY
from chalicelib.resources import JOURNEYS_QUEUE
from chalicelib.services import journey_flow
from infra.local.scheduler import scheduled_event
from tests.integration.test_campaign_sending import make_segment
from tests.integration.test_triggers import new_contact, pump
from tests.support import mail
from tests.support.hostile import HOSTILE_DURATIONS
from tests.support.queues import deliver, drain, take_messages


@pytest.fixture
def partners(api, app, tenant):
    for tag in ("local", "vip", "engaged"):
        assert api.post("/tags", key=tenant.admin_key, json={"name": tag}).status == 201
    assert api.patch("/settings", key=tenant.admin_key, json={"send_rate_per_second": 1000}).status == 200
    tenant.locals = make_segment(api, app, tenant, {"tag": "local"}, "Locals")
    return tenant


def welcome(segment: str, **fields) -> dict:
    """The issue's example, entered by joining ``segment``."""
    return {
        "name": "Welcome partners",
        "entry": {"type": "segment.entered", "segments": [segment]},
        "reentry": {"mode": "never"},
        "holdout_percent": 10,
        "goal": {"event": "purchase", "within": "P14D"},
        "start": "welcome",
        "steps": {
            "welcome": {"type": "send_email", "from": "hello@example.com",
                        "subject": "Welcome {{ contact.first_name }}", "text": "Hello", "next": "wait"},
            "wait": {"type": "wait_for_event", "event": "purchase", "timeout": "P3D", "then": "reward",
                     "timed_out": "vip?"},
            "vip?": {"type": "branch", "criteria": {"tag": "vip"}, "then": "tag", "else": "tip"},
            "tip": {"type": "send_email", "from": "hello@example.com", "subject": "A tip", "text": "Try this",
                    "next": None},
            "tag": {"type": "add_tag", "tag": "engaged", "next": None},
            "reward": {"type": "reward", "amount": 20, "currency": "USD", "next": None},
        },
        **fields,
    }  # fmt: skip


def create_journey(api, tenant, body: dict) -> dict:
    reply = api.post("/journeys", key=tenant.admin_key, json=body)
    assert reply.status == 201, reply.text
    return reply.json


def wake_at(tenant_id: str, moment: datetime, times: int = 2) -> int:
    """The minute drain at ``moment`` firing ``times`` over the real due-time index and queue, then every wake
    message delivered twice in shuffled order; how many contacts moved on."""
    messages = []
    for _ in range(times):
        journey_flow.wake_due(due_journeys(to_rfc3339(moment)), tenant_context)
        messages += take_messages(JOURNEYS_QUEUE, tenant_id)
    deliveries = messages * 2
    random.Random(5).shuffle(deliveries)
    return sum(journey_flow.handle(tenant_context(tenant_id), m, lambda: moment) for m in deliveries)


def where(api, tenant, journey_id: str, reference: str) -> dict:
    reply = api.get(f"/journeys/{journey_id}/contacts/{reference}", key=tenant.viewer_key)
    assert reply.status == 200, reply.text
    return reply.json


def test_the_welcome_journey_does_each_step_once_and_splits_buyers_from_the_rest(api, app, partners):
    journey = create_journey(api, partners, welcome(partners.locals))
    assert (journey["version"], journey["status"]) == (1, "running")
    before = mail.mark()
    names = [f"p{n:02d}" for n in range(30)]
    for n, name in enumerate(names):
        new_contact(api, partners, name, "Lisbon", tags=["local", *(["vip"] if n % 4 == 0 else [])])
    pump(app, partners.id, times=2)
    stats = api.get(f"/journeys/{journey['id']}/stats", key=partners.viewer_key).json
    inside = [name for name in names if where(api, partners, journey["id"], name)["state"] != "holdout"]
    assert stats["entered"] == len(inside) and stats["holdout"]["entered"] == 30 - len(inside)
    welcomed = sorted(m.to for m in mail.sent_since(before) if m.subject.startswith("Welcome"))
    assert welcomed == sorted(f"{name}@example.com" for name in inside)  # once each, the holdout none

    buyers = set(names[::3])
    for name in buyers:
        purchase = {"id": f"buy-{name}", "type": "purchase", "amount": 30, "at": to_rfc3339(datetime.now(UTC))}
        reply = api.post(f"/contacts/{name}/events", key=partners.admin_key, json={"events": [purchase]})
        assert reply.status == 201, reply.text
    pump(app, partners.id, times=2)  # a purchase ends the wait at once: no minute drain needed
    assert wake_at(partners.id, datetime.now(UTC) + timedelta(days=1)) == 0  # nothing is due yet
    later = datetime.now(UTC) + timedelta(days=3, minutes=1)
    assert wake_at(partners.id, later) == len(set(inside) - buyers)
    assert wake_at(partners.id, later) == 0  # the next minute finds nothing left

    for name in names:
        position = where(api, partners, journey["id"], name)
        rewards = api.get(f"/contacts/{name}/rewards", key=partners.viewer_key).json["items"]
        tags = set(api.get(f"/contacts/{name}", key=partners.viewer_key).json["tags"])
        outcomes = [record["outcome"] for record in position["history"]]
        if name not in inside:
            assert (position["state"], rewards, [r["outcome"] for r in position["history"]]) == (
                "holdout",
                [],
                ["holdout"],
            )
        elif name in buyers:
            assert position["state"] == "done" and "happened" in outcomes and "timed_out" not in outcomes
            assert len(rewards) == 1 and "engaged" not in tags
        else:
            assert position["state"] == "done" and "timed_out" in outcomes and "happened" not in outcomes
            assert rewards == [] and ("engaged" in tags) == ("vip" in tags)
    tips = sorted(m.to for m in mail.sent_since(before) if m.subject == "A tip")
    expected_tips = sorted(f"{n}@example.com" for n in set(inside) - buyers if n not in names[::4])
    assert tips == expected_tips
    stats = api.get(f"/journeys/{journey['id']}/stats", key=partners.viewer_key).json
    assert stats["converted"] == len(set(inside) & buyers)
    assert stats["holdout"]["converted"] == len(buyers - set(inside))
    assert stats["steps"]["reward"]["entered"] == len(set(inside) & buyers)
    for step in stats["steps"].values():
        assert step["waiting"] == 0 and step["entered"] == step["completed"] + step["exited"]


def test_the_schedule_handler_wakes_waits_that_are_over_under_the_real_clock(api, app, partners):
    journey = create_journey(
        api, partners,
        {"name": "Nudge", "entry": {"type": "contact.created"}, "start": "wait",
         "steps": {"wait": {"type": "wait", "duration": "P1D", "next": "tag"},
                   "tag": {"type": "add_tag", "tag": "engaged", "next": None}}},
    )  # fmt: skip
    new_contact(api, partners, "ana", "Lisbon")
    changes = take_messages("segments-contact-changes", partners.id)
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    for message in changes * 2:  # entered two days ago: the day's wait is over now
        journey_flow.on_contact_change(tenant_context(partners.id), message, lambda: two_days_ago)
    assert where(api, partners, journey["id"], "ana")["state"] == "waiting"
    for _ in range(2):  # the schedule firing twice
        app.handler_map["wake_due_journeys"](scheduled_event("wake_due_journeys", datetime.now(UTC), "us-east-1"), None)
    assert drain(app, JOURNEYS_QUEUE) == 2
    assert where(api, partners, journey["id"], "ana")["state"] == "done"
    assert "engaged" in api.get("/contacts/ana", key=partners.viewer_key).json["tags"]


def test_a_schedule_entry_enters_its_segments_members_at_each_run_through_the_queue(api, app, partners):
    for name in ("ana", "rui", "eva"):
        new_contact(api, partners, name, "Lisbon", tags=["local"] if name != "rui" else [])
    pump(app, partners.id)
    journey = create_journey(
        api, partners,
        {"name": "Daily", "entry": {"type": "schedule", "expression": "rate(1 day)", "segments": [partners.locals]},
         "start": "tag", "steps": {"tag": {"type": "add_tag", "tag": "engaged", "next": None}}},
    )  # fmt: skip
    due = datetime.fromisoformat(journey["next_run_at"].replace("Z", "+00:00")) + timedelta(seconds=1)
    for _ in range(2):  # the minute schedule firing twice at the run's time
        journey_flow.enter_scheduled(scheduled_journeys(to_rfc3339(due)), tenant_context, lambda: due)
    entries = take_messages(JOURNEYS_QUEUE, partners.id)
    assert len(entries) == 1 and len(entries[0]["contacts"]) == 2  # the second firing found the run started
    assert not deliver(app, "wake_journeys", JOURNEYS_QUEUE, entries, times=2)
    for name in ("ana", "eva"):
        assert "engaged" in api.get(f"/contacts/{name}", key=partners.viewer_key).json["tags"]
    assert "engaged" not in api.get("/contacts/rui", key=partners.viewer_key).json["tags"]
    stats = api.get(f"/journeys/{journey['id']}/stats", key=partners.viewer_key).json
    assert (stats["entered"], stats["steps"]["tag"]["completed"]) == (2, 2)
    after = api.get(f"/journeys/{journey['id']}", key=partners.viewer_key).json
    assert after["next_run_at"] > journey["next_run_at"]


def test_a_paused_journey_holds_its_waits_and_an_edit_lets_contacts_finish_on_their_version(api, app, partners):
    body = {"name": "Two", "entry": {"type": "contact.created"}, "start": "wait",
            "steps": {"wait": {"type": "wait", "duration": "PT1H", "next": "tag"},
                      "tag": {"type": "add_tag", "tag": "engaged", "next": None}}}  # fmt: skip
    journey = create_journey(api, partners, body)
    new_contact(api, partners, "ana", "Lisbon")
    pump(app, partners.id)
    paused = api.post(f"/journeys/{journey['id']}/pause", key=partners.admin_key)
    assert paused.status == 200 and paused.json["status"] == "paused"
    edited = {**body["steps"], "tag": {"type": "add_tag", "tag": "vip", "next": None}}
    reply = api.patch(f"/journeys/{journey['id']}", key=partners.admin_key, json={"steps": edited})
    assert reply.status == 200 and reply.json["version"] == 2 and reply.json["status"] == "paused"
    later = datetime.now(UTC) + timedelta(hours=2)
    assert wake_at(partners.id, later) == 0  # paused: the wait stays
    new_contact(api, partners, "eva", "Lisbon")
    pump(app, partners.id)  # no one enters a paused journey
    assert api.get(f"/journeys/{journey['id']}/contacts/eva", key=partners.viewer_key).status == 404
    assert api.post(f"/journeys/{journey['id']}/resume", key=partners.admin_key).json["status"] == "running"
    assert wake_at(partners.id, later) == 1
    ana = where(api, partners, journey["id"], "ana")
    assert (ana["version"], ana["state"]) == (1, "done")
    assert set(api.get("/contacts/ana", key=partners.viewer_key).json["tags"]) == {"engaged"}  # version 1's step


def test_deleting_what_a_journey_uses_asks_first_then_pauses_it_saying_why(api, app, partners):
    journey = create_journey(api, partners, welcome(partners.locals))
    review = api.delete(f"/segments/{partners.locals}", key=partners.admin_key)
    assert review.status == 409
    assert {"type": "journey", "id": journey["id"], "name": "Welcome partners", "enabled": True} in (
        review.json["error"]["details"]["dependents"]
    )
    assert api.delete(f"/segments/{partners.locals}?confirm=true", key=partners.admin_key).status == 204
    after = api.get(f"/journeys/{journey['id']}", key=partners.viewer_key).json
    assert after["status"] == "paused" and "deleted" in after["status_reason"]
    resumed = api.post(f"/journeys/{journey['id']}/resume", key=partners.admin_key)
    assert resumed.status == 422 and resumed.error_field.startswith("entry.segments"), resumed.text
    assert api.delete(f"/journeys/{journey['id']}", key=partners.admin_key).status == 204
    assert api.get(f"/journeys/{journey['id']}", key=partners.viewer_key).status == 404


def test_every_journey_route_checks_the_role_the_feature_and_the_key(api, partners, new_tenant):
    journey = create_journey(api, partners, welcome(partners.locals))
    routes = [op for op in REGISTRY if op.tag == "journeys"]
    assert len(routes) == 9
    off = new_tenant("No segments", segments=False)
    for op in routes:
        path = op.path.replace("{journey_id}", journey["id"]).replace("{contact_id}", "ana")
        assert api.request(op.method, path, key=off.admin_key, json={}).error_code == "feature_disabled"
        if op.access.value == "admin":
            viewer = api.request(op.method, path, key=partners.viewer_key, json={"name": "x"})
            assert viewer.status == 403 and viewer.error_code == "forbidden", (op.method, path)
        assert api.request(op.method, path).status == 401


def test_tenant_b_cannot_read_or_change_tenant_a_journeys(api, app, partners, other_tenant):
    journey = create_journey(api, partners, welcome(partners.locals))
    new_contact(api, partners, "ana", "Lisbon", tags=["local"])
    pump(app, partners.id)
    contact_id = api.get("/contacts/ana", key=partners.viewer_key).json["id"]
    inside = where(api, partners, journey["id"], "ana")
    assert inside["state"] in ("waiting", "holdout")  # a tenth are kept out, by a hash of the journey's new id
    other = other_tenant.admin_key
    for op in [op for op in REGISTRY if op.tag == "journeys" and "{journey_id}" in op.path]:
        path = op.path.replace("{journey_id}", journey["id"]).replace("{contact_id}", contact_id)
        reply = api.request(op.method, path, key=other, json={"name": "stolen"})
        assert reply.status == 404, (op.method, path, reply.text)
    assert api.get("/journeys", key=other).json["items"] == []
    # tenant A's segment is not one tenant B can enter from
    reply = api.post("/journeys", key=other, json=welcome(partners.locals))
    assert reply.status == 422 and reply.error_field == "entry.segments[0]", reply.text
    mine = api.get(f"/journeys/{journey['id']}", key=partners.viewer_key).json
    assert (mine["name"], mine["status"]) == ("Welcome partners", "running")
    assert where(api, partners, journey["id"], "ana") == inside


def _chain(length: int) -> dict:
    return {f"s{i}": {"type": "add_tag", "tag": "engaged", "next": f"s{i + 1}" if i + 1 < length else None}
            for i in range(length)}  # fmt: skip


HOSTILE_DEFINITIONS = [
    ({"steps": {"a": {"type": "add_tag", "tag": "engaged", "next": "b"},
                "b": {"type": "add_tag", "tag": "engaged", "next": "a"}}, "start": "a"}, "steps.b.next"),
    ({"steps": _chain(1_000), "start": "s0"}, "steps"),
    ({"steps": {"w": {"type": "wait", "duration": "P1000000000D", "next": None}}, "start": "w"}, "steps.w.duration"),
    ({"steps": {"w": {"type": "wait_for_event", "event": "purchase", "timeout": "P1000000000D", "then": None,
                      "timed_out": None}}, "start": "w"}, "steps.w.timeout"),
    ({"steps": {"a": {"type": "add_tag", "tag": "engaged", "next": "nowhere"}}, "start": "a"}, "steps.a.next"),
    ({"steps": {"a": {"type": "add_tag", "tag": "engaged", "next": None}}, "start": "nowhere"}, "start"),
    ({"steps": {"a": {"type": "add_tag", "tag": "no-such-tag", "next": None}}, "start": "a"}, "steps.a.tag"),
    ({"steps": {"a": {"type": "announce", "announcement_id": "ann_0000000000000000000000000", "next": None}},
      "start": "a"}, "steps.a.announcement_id"),
    ({"steps": {"a": {"type": "webhook", "webhook_id": "whk_0000000000000000000000000", "next": None}},
      "start": "a"}, "steps.a.webhook_id"),
    ({"entry": {"type": "segment.entered", "segments": ["seg_0000000000000000000000000"]}}, "entry.segments[0]"),
    ({"steps": {"b": {"type": "branch", "criteria": {"segment": "seg_0000000000000000000000000"}, "then": None,
                      "else": None}}, "start": "b"}, "steps.b.criteria"),
    ({"steps": {"w": {"type": "wait", "until": "25:00", "time_zone": "tenant", "next": None}}, "start": "w"},
     "steps.w.until"),
    ({"steps": {"s": {"type": "split", "branches": [{"percent": 60, "next": None}, {"percent": 60, "next": None}]}},
      "start": "s"}, "steps.s.branches"),
    ({"holdout_percent": 101}, "holdout_percent"),
]  # fmt: skip
"""Definitions refused at save time with a 422 naming the field (or the field's start)."""

DURATION_FIELDS = [
    ("steps.w.duration", {"steps": {"w": {"type": "wait", "duration": "PT1H", "next": None}}, "start": "w"}),
    ("steps.w.timeout", {"steps": {"w": {"type": "wait_for_event", "event": "purchase", "timeout": "PT1H",
                                         "then": None, "timed_out": None}}, "start": "w"}),
    ("reentry.after", {"reentry": {"mode": "after", "after": "P7D"}}),
    ("goal.within", {"goal": {"event": "purchase", "within": "P7D"}}),
]  # fmt: skip


def _set(body: dict, field: str, value: object) -> dict:
    body = json.loads(json.dumps(body))
    target = body
    parts = field.split(".")
    for part in parts[:-1]:
        target = target[part]
    target[parts[-1]] = value
    return body


def test_hostile_definitions_and_durations_are_a_422_naming_the_field_and_write_nothing(api, partners):
    journey = create_journey(api, partners, welcome(partners.locals))
    before = api.get("/journeys", key=partners.viewer_key).json
    for change, field in HOSTILE_DEFINITIONS:
        for method, path in (("POST", "/journeys"), ("PATCH", f"/journeys/{journey['id']}")):
            body = {**welcome(partners.locals), **change} if method == "POST" else change
            reply = api.request(method, path, key=partners.admin_key, json=body)
            assert reply.status == 422 and reply.error_field.startswith(field), (method, field, reply.text)
    for field, change in DURATION_FIELDS:
        for raw in HOSTILE_DURATIONS:
            for method, path in (("POST", "/journeys"), ("PATCH", f"/journeys/{journey['id']}")):
                body = _set({**welcome(partners.locals), **change} if method == "POST" else dict(change), field, raw)
                reply = api.request(method, path, key=partners.admin_key, json=body)
                assert reply.status == 422 and reply.error_field.startswith(field), (method, field, raw, reply.text)
    assert api.get("/journeys", key=partners.viewer_key).json == before
