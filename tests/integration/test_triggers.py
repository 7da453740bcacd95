"""Triggers: the automated-tagging chain, once-only effects under redelivery, the chain bound, scheduled
and manual runs over 10,000 members, bad input, dependents, roles and tenant isolation."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from chalicelib.composition import due_triggers, tenant_context
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.contacts import Contact, contact_id_for
from chalicelib.http.api import REGISTRY
from chalicelib.resources import (
    CONTACT_CHANGES_BULK_QUEUE,
    CONTACT_CHANGES_QUEUE,
    MAIN_TABLE,
    MEMBERSHIP_EVENTS_QUEUE,
    TRIGGER_RUNS_QUEUE,
)
from chalicelib.services import trigger_runs
from chalicelib.services import triggers as trigger_service
from chalicelib.storage.contacts import ContactTable
from chalicelib.storage.engagements import EngagementTable
from chalicelib.storage.triggers import TriggerTable
from tests.integration.test_campaign_sending import make_segment
from tests.support import mail
from tests.support.queues import deliver, drain, take_changes, take_messages

HANDLERS = {
    CONTACT_CHANGES_QUEUE: "apply_contact_changes",
    CONTACT_CHANGES_BULK_QUEUE: "apply_bulk_contact_changes",
    MEMBERSHIP_EVENTS_QUEUE: "apply_membership_events",
}


def pump(app, tenant_id: str, times: int = 2, seed: int = 3) -> int:
    """Run the contact-change and membership-event queues until both are empty, every message delivered
    ``times`` times in shuffled order; return how many messages there were."""
    seen = 0
    rounds = 0
    while True:
        moved = 0
        for queue, handler in HANDLERS.items():
            bodies = take_messages(queue, tenant_id)
            if bodies:
                assert not deliver(app, handler, queue, bodies, times=times, seed=seed + rounds)
                moved += len(bodies)
        seen += moved
        rounds += 1
        if not moved:
            return seen
        assert rounds < 50, "the queues never emptied"


@pytest.fixture
def partners(api, app, tenant):
    for tag in ("local", "vip", "welcomed", "news"):
        assert api.post("/tags", key=tenant.admin_key, json={"name": tag}).status == 201
    tenant.locals = make_segment(api, app, tenant, {"tag": "local"}, "Locals")
    tenant.vips = make_segment(api, app, tenant, {"tag": "vip"}, "VIPs")
    return tenant


def new_contact(api, tenant, external_id: str, city: str, **fields) -> dict:
    body = {"external_id": external_id, "email": f"{external_id}@example.com", "first_name": external_id.title(),
            "attributes": {"city": city}, **fields}  # fmt: skip
    reply = api.post("/contacts", key=tenant.admin_key, json=body)
    assert reply.status == 201, reply.text
    return reply.json


def create_trigger(api, tenant, **body) -> dict:
    reply = api.post("/triggers", key=tenant.admin_key, json={"name": "t", **body})
    assert reply.status == 201, reply.text
    return reply.json


def rewards(api, tenant, reference: str) -> list[dict]:
    return api.get(f"/contacts/{reference}/rewards", key=tenant.viewer_key).json["items"]


def runs(api, tenant, trigger_id: str) -> list[dict]:
    return api.get(f"/triggers/{trigger_id}/runs", key=tenant.viewer_key).json["items"]


def test_new_partners_are_tagged_land_in_the_segment_and_are_rewarded_and_announced_once(api, app, partners):
    window = {"starts_at": to_rfc3339(datetime.now(UTC) - timedelta(days=1)),
              "ends_at": to_rfc3339(datetime.now(UTC) + timedelta(days=30))}  # fmt: skip
    welcome = api.post(
        "/announcements",
        key=partners.admin_key,
        json={"title": "Welcome, local partner", "body": "Your perks.", "segments": [partners.vips], **window},
    ).json
    tagging = create_trigger(
        api, partners, name="Tag new Lisbon partners",
        event={"type": "contact.created"},
        conditions={"attr": "city", "op": "eq", "value": "Lisbon"},
        actions=[{"type": "add_tag", "tag": "local"}],
    )  # fmt: skip
    rewarding = create_trigger(
        api, partners, name="Welcome locals",
        event={"type": "segment.entered", "segments": [partners.locals]},
        actions=[
            {"type": "reward", "amount": 50, "currency": "USD", "note": "welcome"},
            {"type": "announce", "announcement_id": welcome["id"]},
            {"type": "add_tag", "tag": "welcomed"},
        ],
    )  # fmt: skip
    new_contact(api, partners, "ana", "Lisbon")
    new_contact(api, partners, "rui", "Porto")
    new_contact(api, partners, "eva", "Lisbon")
    pump(app, partners.id, times=2)

    for who in ("ana", "eva"):
        contact = api.get(f"/contacts/{who}", key=partners.viewer_key).json
        assert set(contact["tags"]) == {"local", "welcomed"}
        (reward,) = rewards(api, partners, who)
        assert (reward["amount"], reward["currency"], reward["source"]["id"]) == (50, "USD", rewarding["id"])
        token = api.post(f"/contacts/{who}/portal-tokens", key=partners.admin_key).json["token"]
        assert [a["title"] for a in api.get("/portal/announcements", key=token).json["items"]] == [
            "Welcome, local partner"
        ]
    assert api.get("/contacts/rui", key=partners.viewer_key).json["tags"] == []
    assert rewards(api, partners, "rui") == []
    members = api.get(f"/segments/{partners.locals}/members", key=partners.viewer_key).json["items"]
    assert sorted(m["external_id"] for m in members) == ["ana", "eva"]

    (tagging_run,) = runs(api, partners, tagging["id"])
    assert tagging_run["kind"] == "events" and tagging_run["status"] == "running"
    assert (tagging_run["contacts"], tagging_run["actions_applied"], tagging_run["skipped"]) == (3, 2, 1)
    (rewarding_run,) = runs(api, partners, rewarding["id"])
    assert (rewarding_run["contacts"], rewarding_run["actions_applied"], rewarding_run["failures"]) == (2, 2, 0)


def test_every_event_delivered_twice_applies_each_action_once(api, app, partners):
    before = mail.mark()
    vip_mail = create_trigger(
        api, partners, name="VIP welcome",
        event={"type": "tag.added", "tag": "vip"},
        actions=[
            {"type": "send_email", "from": "hello@example.com", "subject": "Welcome {{ contact.first_name }}",
             "text": "You are VIP now. {{ unsubscribe_url }}"},
            {"type": "reward", "amount": 10},
        ],
    )  # fmt: skip
    big_purchase = create_trigger(
        api, partners, name="Purchase over $50",
        event={"type": "event.received", "event_type": "purchase", "min_amount": 50},
        actions=[{"type": "reward", "amount": 5, "note": "big purchase"}],
    )  # fmt: skip
    for who in ("ana", "rui", "eva"):
        new_contact(api, partners, who, "Lisbon")
    pump(app, partners.id)
    for who in ("ana", "eva"):
        assert api.post(f"/contacts/{who}/tags", key=partners.admin_key, json={"add": ["vip"]}).status == 200
    purchases = [
        {"external_id": "ana", "type": "purchase", "at": to_rfc3339(datetime.now(UTC)), "amount": 70, "id": "o-1"},
        {"external_id": "ana", "type": "purchase", "at": to_rfc3339(datetime.now(UTC)), "amount": 20, "id": "o-2"},
        {"external_id": "rui", "type": "purchase", "at": to_rfc3339(datetime.now(UTC)), "amount": 55, "id": "o-3"},
        {"external_id": "rui", "type": "purchase", "at": to_rfc3339(datetime.now(UTC)), "amount": 90, "id": "o-4"},
    ]
    assert api.post("/events", key=partners.admin_key, json={"events": purchases}).status in (200, 201)
    pump(app, partners.id, times=3)
    # the same events posted again (a client retry) are the same causes
    assert api.post("/events", key=partners.admin_key, json={"events": purchases}).status in (200, 201)
    pump(app, partners.id, times=2)

    sent = Counter(m.to for m in mail.sent_since(before))
    assert sent == Counter({"ana@example.com": 1, "eva@example.com": 1})
    (message,) = [m for m in mail.sent_since(before) if m.to == "ana@example.com"]
    assert message.subject == "Welcome Ana" and message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    by_source = {
        who: sorted((r["source"]["id"], r["amount"]) for r in rewards(api, partners, who))
        for who in ("ana", "rui", "eva")
    }
    assert by_source == {
        "ana": sorted([(vip_mail["id"], 10), (big_purchase["id"], 5)]),
        "rui": [(big_purchase["id"], 5), (big_purchase["id"], 5)],  # two purchases over $50: two causes
        "eva": [(vip_mail["id"], 10)],
    }
    (run,) = runs(api, partners, big_purchase["id"])
    assert (run["contacts"], run["actions_applied"]) == (3, 3)


def test_a_trigger_that_retriggers_itself_is_stopped_by_the_chain_bound(api, app, partners):
    # entering VIPs removes the tag (exit), exiting adds it back (enter), and so on
    drop = create_trigger(
        api, partners, name="drop", event={"type": "segment.entered", "segments": [partners.vips]},
        actions=[{"type": "remove_tag", "tag": "vip"}, {"type": "reward", "amount": 1}],
    )  # fmt: skip
    readd = create_trigger(
        api, partners, name="re-add", event={"type": "segment.exited", "segments": [partners.vips]},
        actions=[{"type": "add_tag", "tag": "vip"}],
    )  # fmt: skip
    new_contact(api, partners, "ana", "Lisbon", tags=["vip"])
    pump(app, partners.id, times=2)

    fired = {t["id"]: runs(api, partners, t["id"])[0] for t in (drop, readd)}
    applied = fired[drop["id"]]["actions_applied"] + fired[readd["id"]]["actions_applied"]
    stopped = fired[drop["id"]]["stopped_by_chain_depth"] + fired[readd["id"]]["stopped_by_chain_depth"]
    assert applied == trigger_service.rules.MAX_CHAIN_DEPTH and stopped == 1
    stopper = next(r for r in fired.values() if r["stopped_by_chain_depth"])
    assert "depth 5" in stopper["note"]
    assert len(rewards(api, partners, "ana")) == fired[drop["id"]]["actions_applied"]


def load_members(tenant_id: str, count: int) -> None:
    """``count`` contacts tagged news, written straight to storage (as the benches do): the import path
    has its own tests, and this one is about the run's fan-out."""
    assert ContactTable(tenant_id).allocate_ordinals(count) == 1
    stamp = to_rfc3339(datetime.now(UTC))
    contacts = [
        Contact(id=contact_id_for(n), ordinal=n, external_id=f"m-{n}", email=f"m{n}@example.com",
                tags=frozenset({"news"}), version=1, created_at=stamp, updated_at=stamp)
        for n in range(1, count + 1)
    ]  # fmt: skip
    for batch in ContactTable(tenant_id).transaction_batches([(None, c) for c in contacts]):
        ContactTable(tenant_id).write(batch)


def reward_lines(tenant_id: str) -> Counter:
    """Every reward line of the tenant, by contact, straight from the table."""
    table = boto3.resource("dynamodb").Table(MAIN_TABLE)
    found: Counter = Counter()
    kwargs: dict = {"ProjectionExpression": "pk, sk"}
    while True:
        page = table.scan(**kwargs)
        for item in page["Items"]:
            if item["pk"].startswith(f"TENANT#{tenant_id}#SHARD#") and item["sk"].startswith("RW#"):
                found[item["sk"].split("#")[1]] += 1
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_a_scheduled_run_over_ten_thousand_members_applies_one_action_each(api, app, partners):
    load_members(partners.id, 10_000)
    news = make_segment(api, app, partners, {"tag": "news"}, "News readers")
    weekly = create_trigger(
        api, partners, name="Weekly points", event={"type": "schedule", "expression": "cron(0 9 ? * MON *)",
                                                    "segments": [news]},
        actions=[{"type": "reward", "amount": 5, "note": "weekly"}],
    )  # fmt: skip
    assert weekly["next_run_at"] > to_rfc3339(datetime.now(UTC))

    # the minute schedule, called by two workers at the same moment once the time has come: one run
    due = datetime.fromisoformat(weekly["next_run_at"].replace("Z", "+00:00")) + timedelta(seconds=5)
    trigger_runs.start_due(due_triggers, tenant_context, clock=lambda: due)
    trigger_runs.start_due(due_triggers, tenant_context, clock=lambda: due)  # (other tests' triggers may be due)
    after = api.get(f"/triggers/{weekly['id']}", key=partners.viewer_key).json
    assert after["next_run_at"] > weekly["next_run_at"]  # the next Monday
    (run,) = runs(api, partners, weekly["id"])
    assert run["kind"] == "schedule" and run["progress"] == {"batches_done": 0, "batches_total": 100}

    batches = take_messages(TRIGGER_RUNS_QUEUE, partners.id)
    assert len(batches) == 100
    random.Random(5).shuffle(batches)
    assert not deliver(app, "run_trigger_batches", TRIGGER_RUNS_QUEUE, batches[:10] + batches, batch_size=1)
    (run,) = runs(api, partners, weekly["id"])
    assert run["status"] == "finished" and run["progress"] == {"batches_done": 100, "batches_total": 100}
    assert (run["contacts"], run["actions_applied"], run["failures"]) == (10_000, 10_000, 0)
    lines = reward_lines(partners.id)
    assert len(lines) == 10_000 and set(lines.values()) == {1}


def test_run_now_starts_a_manual_run_and_only_schedule_triggers_have_one(api, app, partners):
    new_contact(api, partners, "ana", "Lisbon", tags=["vip"])
    drain(app)
    scheduled = create_trigger(
        api, partners, name="daily",
        event={"type": "schedule", "expression": "rate(1 day)", "segments": [partners.vips]},
        actions=[{"type": "add_tag", "tag": "welcomed"}],
    )  # fmt: skip
    reply = api.post(f"/triggers/{scheduled['id']}/run", key=partners.admin_key)
    assert reply.status == 202 and reply.json["kind"] == "manual" and reply.json["status"] == "running"
    drain(app)
    assert "welcomed" in api.get("/contacts/ana", key=partners.viewer_key).json["tags"]
    (run,) = runs(api, partners, scheduled["id"])
    assert (run["status"], run["contacts"], run["actions_applied"]) == ("finished", 1, 1)

    on_entry = create_trigger(
        api,
        partners,
        event={"type": "segment.entered", "segments": [partners.vips]},
        actions=[{"type": "reward", "amount": 1}],
    )
    refused = api.post(f"/triggers/{on_entry['id']}/run", key=partners.admin_key)
    assert refused.status == 409 and refused.json["error"]["details"]["field"] == "event.type"
    api.patch(f"/triggers/{scheduled['id']}", key=partners.admin_key, json={"enabled": False})
    assert api.post(f"/triggers/{scheduled['id']}/run", key=partners.admin_key).status == 409


def eleven_segments(api, app, tenant) -> list[str]:
    return [make_segment(api, app, tenant, {"tag": "local"}, f"S{i}") for i in range(11)]


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"event": {"type": "segment.entered", "segments": "eleven"}}, "limit_exceeded", "event.segments"),
        ({"event": {"type": "segment.entered", "segments": []}}, "validation_error", "event.segments"),
        ({"event": {"type": "segment.entered", "segments": ["seg_nope"]}}, "validation_error", "event.segments[0]"),
        ({"event": {"type": "birthday"}}, "validation_error", "event.type"),
        ({"event": {"type": "schedule", "expression": "cron(0 9 * * MON *)", "segments": "locals"}}, "validation_error",
         "event.expression"),
        ({"event": {"type": "schedule", "expression": "every monday", "segments": "locals"}}, "validation_error",
         "event.expression"),
        ({"event": {"type": "schedule", "segments": "locals"}}, "validation_error", "event.expression"),
        ({"event": {"type": "tag.added"}}, "validation_error", "event.tag"),
        ({"event": {"type": "tag.added", "tag": "ghost"}}, "validation_error", "event.tag"),
        ({"event": {"type": "contact.created", "tag": "vip"}}, "validation_error", "event.tag"),
        ({"actions": [{"type": "launch_rocket"}]}, "validation_error", "actions[0].type"),
        ({"actions": []}, "validation_error", "actions"),
        ({"actions": [{"type": "reward", "amount": 1}] * 11}, "limit_exceeded", "actions"),
        ({"actions": [{"type": "reward", "amount": -50}]}, "validation_error", "actions[0].amount"),
        ({"actions": [{"type": "reward", "amount": 5, "currency": "usd"}]}, "validation_error", "actions[0].currency"),
        ({"actions": [{"type": "add_tag", "tag": "ghost"}]}, "validation_error", "actions[0].tag"),
        ({"actions": [{"type": "add_tag"}]}, "validation_error", "actions[0].tag"),
        ({"actions": [{"type": "add_tag", "tag": "vip"}, {"type": "remove_tag", "tag": "vip"}]}, "validation_error",
         "actions[1].tag"),
        ({"actions": [{"type": "announce", "announcement_id": "ann_nope"}]}, "validation_error",
         "actions[0].announcement_id"),
        ({"actions": [{"type": "send_email", "from": "a@example.com", "subject": "Hi {{ contact.shoe_size }}"}]},
         "validation_error", "actions[0].subject"),
        ({"actions": [{"type": "send_email", "from": "a@unverified.test", "subject": "Hi", "text": "x"}]},
         "validation_error", "actions[0].from"),
        ({"conditions": {"attr": "city", "op": "sounds_like", "value": "x"}}, "validation_error", "conditions.op"),
        ({"conditions": {"tag": "ghost"}}, "unknown_tags", "conditions.tag"),
        ({"enabled": "yes"}, "validation_error", "enabled"),
    ],
)  # fmt: skip
def test_bad_triggers_are_a_422_naming_the_field_and_nothing_is_saved(api, app, partners, change, code, field):
    body = {"name": "bad", "event": {"type": "contact.created"}, "actions": [{"type": "add_tag", "tag": "local"}]}
    body.update(change)
    segments = body["event"].get("segments")
    if segments == "eleven":
        body["event"] = {**body["event"], "segments": eleven_segments(api, app, partners)}
    elif segments == "locals":
        body["event"] = {**body["event"], "segments": [partners.locals]}
    reply = api.post("/triggers", key=partners.admin_key, json=body)
    assert reply.status == 422 and reply.error_code == code, reply.text
    assert reply.json["error"]["details"]["field"] == field
    assert api.get("/triggers", key=partners.admin_key).json["items"] == []


def test_deleting_a_segment_or_a_tag_a_trigger_uses_says_so_and_disables_what_cannot_work(api, app, partners):
    entered = create_trigger(
        api, partners, event={"type": "segment.entered", "segments": [partners.locals]},
        actions=[{"type": "add_tag", "tag": "welcomed"}, {"type": "reward", "amount": 1}],
    )  # fmt: skip
    filtered = create_trigger(
        api, partners, event={"type": "contact.created", "segments": [partners.locals]},
        actions=[{"type": "reward", "amount": 1}],
    )  # fmt: skip
    conditioned = create_trigger(
        api, partners, event={"type": "contact.created"}, actions=[{"type": "reward", "amount": 1}],
        conditions={"all": [{"tag": "vip"}, {"not": {"segment": partners.locals}}]},
    )  # fmt: skip
    found = api.get(f"/segments/{partners.locals}/dependents", key=partners.viewer_key).json["items"]
    assert {(d["type"], d["id"]) for d in found} == {
        ("trigger", entered["id"]), ("trigger", filtered["id"]), ("trigger", conditioned["id"])
    }  # fmt: skip
    asked = api.delete(f"/segments/{partners.locals}", key=partners.admin_key)
    assert asked.status == 409 and conditioned["id"] in {d["id"] for d in asked.json["error"]["details"]["dependents"]}
    assert api.delete(f"/segments/{partners.locals}?confirm=true", key=partners.admin_key).status == 204
    gone = api.get(f"/triggers/{entered['id']}", key=partners.viewer_key).json
    assert gone["enabled"] is False and "Locals" in gone["status_reason"] and gone["event"]["segments"] == []
    kept = api.get(f"/triggers/{filtered['id']}", key=partners.viewer_key).json
    assert kept["enabled"] is True and kept["event"]["segments"] == []  # now fires for every new contact
    stopped = api.get(f"/triggers/{conditioned['id']}", key=partners.viewer_key).json
    assert stopped["enabled"] is False and "conditions" in stopped["status_reason"]
    assert stopped["conditions"] == conditioned["conditions"]  # left as written: dropping a part changes them
    enabling = api.patch(f"/triggers/{conditioned['id']}", key=partners.admin_key, json={"enabled": True})
    assert enabling.status == 422 and enabling.json["error"]["details"]["field"].startswith("conditions")
    mended = api.patch(f"/triggers/{conditioned['id']}", key=partners.admin_key, json={"conditions": {"tag": "vip"}})
    assert mended.status == 200 and mended.json["enabled"] is True and mended.json["status_reason"] is None

    tag_users = api.delete("/tags/welcomed", key=partners.admin_key)
    assert tag_users.status == 409
    assert {d["id"] for d in tag_users.json["error"]["details"]["dependents"]} >= {entered["id"]}
    assert api.delete("/tags/welcomed?confirm=true", key=partners.admin_key).status in (202, 204)
    drain(app)
    after = api.get(f"/triggers/{entered['id']}", key=partners.viewer_key).json
    assert after["actions"] == [{"type": "reward", "amount": 1, "currency": "points", "note": None}]


def test_viewers_read_admins_write_and_the_feature_flag_guards_every_trigger_route(api, partners, new_tenant):
    trigger = create_trigger(
        api, partners, event={"type": "contact.created"}, actions=[{"type": "reward", "amount": 1}]
    )
    routes = [op for op in REGISTRY if op.tag == "triggers"]
    assert len(routes) == 7
    off = new_tenant("No segments", segments=False)
    for op in routes:
        path = op.path.replace("{trigger_id}", trigger["id"])
        body = {"name": "x"}
        assert api.request(op.method, path, key=off.admin_key, json=body).error_code == "feature_disabled"
        if op.access.value == "admin":
            viewer = api.request(op.method, path, key=partners.viewer_key, json=body)
            assert viewer.status == 403 and viewer.error_code == "forbidden", (op.method, path)
        assert api.request(op.method, path).status == 401


def test_tenant_b_cannot_read_or_change_tenant_a_triggers(api, app, partners, other_tenant):
    trigger = create_trigger(
        api, partners, event={"type": "schedule", "expression": "rate(1 day)", "segments": [partners.vips]},
        actions=[{"type": "reward", "amount": 1}],
    )  # fmt: skip
    other = other_tenant.admin_key
    for method, path in [
        ("GET", f"/triggers/{trigger['id']}"),
        ("PATCH", f"/triggers/{trigger['id']}"),
        ("DELETE", f"/triggers/{trigger['id']}"),
        ("GET", f"/triggers/{trigger['id']}/runs"),
        ("POST", f"/triggers/{trigger['id']}/run"),
    ]:
        reply = api.request(method, path, key=other, json={"name": "stolen"})
        assert reply.status == 404, (method, path, reply.text)
    assert api.get("/triggers", key=other).json["items"] == []
    # tenant B's segment id in tenant A's trigger is a segment A does not have
    api.post("/tags", key=other, json={"name": "vip"})
    b_segment = make_segment(api, app, other_tenant, {"tag": "vip"}, "B VIPs")
    reply = api.post(
        "/triggers", key=partners.admin_key,
        json={"name": "x", "event": {"type": "segment.entered", "segments": [b_segment]},
              "actions": [{"type": "reward", "amount": 1}]},
    )  # fmt: skip
    assert reply.status == 422 and reply.json["error"]["details"]["field"] == "event.segments[0]"
    assert api.get(f"/triggers/{trigger['id']}", key=partners.viewer_key).json["name"] == "t"


def test_a_throttled_trigger_email_is_retried_by_the_queue_and_sent_once(api, app, partners, monkeypatch):
    from chalicelib.ports.mailer import MailError
    from chalicelib.storage import mailer

    real, calls = mailer.send_email, []

    def throttled_first(message):
        calls.append(message.to)
        if len(calls) == 1:
            raise MailError("TooManyRequestsException", "Maximum sending rate exceeded.", 429)
        return real(message)

    monkeypatch.setattr(mailer, "send_email", throttled_first)
    before = mail.mark()
    create_trigger(
        api, partners, event={"type": "contact.created"},
        actions=[{"type": "send_email", "from": "hello@example.com", "subject": "Hi", "text": "Hello"},
                 {"type": "reward", "amount": 1}],
    )  # fmt: skip
    new_contact(api, partners, "ana", "Lisbon")
    changes = take_changes(partners.id)
    failed = deliver(app, "apply_contact_changes", CONTACT_CHANGES_QUEUE, changes)
    assert len(failed) == 1  # SQS will deliver it again
    assert not deliver(app, "apply_contact_changes", CONTACT_CHANGES_QUEUE, changes, times=2)
    assert [m.to for m in mail.sent_since(before)] == ["ana@example.com"]
    assert calls == ["ana@example.com", "ana@example.com"]
    assert len(rewards(api, partners, "ana")) == 1


def test_a_scheduled_run_survives_a_worker_stopping_before_it_moved_the_schedule_on(api, app, partners, monkeypatch):
    new_contact(api, partners, "ana", "Lisbon", tags=["vip"])
    drain(app)
    daily = create_trigger(
        api, partners, name="daily",
        event={"type": "schedule", "expression": "rate(1 day)", "segments": [partners.vips]},
        actions=[{"type": "reward", "amount": 2}],
    )  # fmt: skip
    due = datetime.fromisoformat(daily["next_run_at"].replace("Z", "+00:00")) + timedelta(seconds=1)
    real = TriggerTable.advance_schedule

    def stop_once(*args, **kwargs):
        monkeypatch.setattr(TriggerTable, "advance_schedule", real)
        raise RuntimeError("the worker stopped here")

    monkeypatch.setattr(TriggerTable, "advance_schedule", stop_once)
    with pytest.raises(RuntimeError):
        trigger_runs.start_due(due_triggers, tenant_context, clock=lambda: due)
    trigger_runs.start_due(due_triggers, tenant_context, clock=lambda: due)  # next minute: the same run again
    drain(app)
    (run,) = runs(api, partners, daily["id"])
    assert (run["kind"], run["status"], run["contacts"], run["actions_applied"]) == ("schedule", "finished", 1, 1)
    assert len(rewards(api, partners, "ana")) == 1

    manual = api.post(f"/triggers/{daily['id']}/run", key=partners.admin_key).json
    drain(app)
    listed = runs(api, partners, daily["id"])
    assert [r["id"] for r in listed] == [run["id"], manual["id"]]  # newest first: the scheduled one is "tomorrow"
    assert listed[0]["started_at"] > listed[1]["started_at"]
    assert len(rewards(api, partners, "ana")) == 2  # another run, another cause


def test_a_batch_that_keeps_failing_is_retried_alone_then_counted_as_failures_from_the_dead_letter_queue(
    api, app, partners, monkeypatch
):
    from chalicelib.resources import TRIGGER_RUNS_DEAD_LETTER_QUEUE

    for who in ("ana", "eva"):
        new_contact(api, partners, who, "Lisbon", tags=["vip"])
    drain(app)
    daily = create_trigger(
        api, partners, name="daily",
        event={"type": "schedule", "expression": "rate(1 day)", "segments": [partners.vips]},
        actions=[{"type": "reward", "amount": 1}],
    )  # fmt: skip
    monkeypatch.setattr(trigger_runs, "RUN_BATCH_SIZE", 1)
    api.post(f"/triggers/{daily['id']}/run", key=partners.admin_key)
    batches = take_messages(TRIGGER_RUNS_QUEUE, partners.id)
    assert len(batches) == 2
    real = EngagementTable.put_rewards
    batch = batches[0]
    (doomed,), _ = TriggerTable(partners.id).batch_contacts(daily["id"], batch["run_id"], batch["batch"])

    def broken_for_the_first(table, lines):
        if any(reward.contact_id == doomed for _, reward in lines):
            raise RuntimeError("storage refused")
        return real(table, lines)

    monkeypatch.setattr(EngagementTable, "put_rewards", broken_for_the_first)
    failed = deliver(app, "run_trigger_batches", TRIGGER_RUNS_QUEUE, batches, batch_size=2)
    assert len(failed) == 1  # only the failing record is retried; the other batch is done
    (run,) = runs(api, partners, daily["id"])
    assert (run["status"], run["progress"]["batches_done"], run["actions_applied"]) == ("running", 1, 1)

    # after its last delivery SQS moves it to the dead-letter queue, whose handler counts it and ends the run
    assert not deliver(app, "fail_dead_trigger_batches", TRIGGER_RUNS_DEAD_LETTER_QUEUE, [batch], times=2)
    (run,) = runs(api, partners, daily["id"])
    assert (run["status"], run["contacts"], run["actions_applied"], run["failures"]) == ("finished", 2, 1, 1)
