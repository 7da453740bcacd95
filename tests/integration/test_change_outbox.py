"""Contact-change messages go through an outbox written with the contact write: when SQS refuses after the
write, nothing is lost — the minute relay queues the message and membership follows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.composition import tenant_context
from chalicelib.resources import CONTACT_CHANGES_BULK_QUEUE, CONTACT_CHANGES_QUEUE, MEMBERSHIP_EVENTS_QUEUE
from chalicelib.services import changes, membership
from chalicelib.storage import queues
from chalicelib.storage.membership import left_unqueued
from chalicelib.storage.outbox import OutboxTable
from chalicelib.storage.queues import SqsQueues
from tests.integration.test_campaign_sending import make_segment
from tests.support.population import import_and_wait
from tests.support.queues import deliver, drain, take_changes, take_messages
from tests.support.world import soon


def later(minutes: float = 2):
    return lambda: datetime.now(UTC) + timedelta(minutes=minutes)


def mine(tenant_id: str) -> list[list[dict]]:
    """The tenant's pending messages, as the writes that left them kept them together (other tests' too are
    pending in the shared table: all are read)."""
    return [group for group in OutboxTable().pending("9999", limit=10_000) if group[0]["tenant_id"] == tenant_id]


def relay(clock) -> int:
    return changes.relay_pending(OutboxTable(), SqsQueues(), clock)


def refusing(*queues_down: str):
    """queues.send_messages as it is, except that SQS refuses everything sent to ``queues_down``."""
    real_send = queues.send_messages

    def send(queue_name, messages, **kwargs):
        if queue_name in queues_down:
            raise queues.SendFailed("SQS is down")
        return real_send(queue_name, messages, **kwargs)

    return send


def test_a_change_sqs_refused_is_relayed_from_the_outbox_and_membership_follows(api, app, tenant, monkeypatch):
    key = tenant.admin_key
    api.post("/tags", key=key, json={"name": "vip"})
    segment = make_segment(api, app, tenant, {"tag": "vip"}, "VIPs")
    real_send = queues.send_messages
    monkeypatch.setattr(queues, "send_messages", refusing(CONTACT_CHANGES_QUEUE, CONTACT_CHANGES_BULK_QUEUE))
    assert api.post("/contacts", key=key, json={"external_id": "p-1", "tags": ["vip"]}).status == 201
    purchase = {"events": [{"type": "purchase", "at": soon(-1)}]}
    assert api.post("/contacts/p-1/events", key=key, json=purchase).status in (200, 201)
    job = import_and_wait(api, app, key, "external_id,tags\np-2,vip\np-3,vip\n")
    assert job["counts"]["created"] == 2
    assert take_changes(tenant.id) == []
    assert sorted(len(group) for group in mine(tenant.id)) == [1, 1, 2]  # created, events, two imported at once

    monkeypatch.setattr(queues, "send_messages", real_send)
    relay(clock=lambda: datetime.now(UTC))  # relays every tenant's: other tests' old ones may be waiting
    assert len(mine(tenant.id)) == 3 and take_changes(tenant.id) == []  # young: its request's to queue
    assert relay(clock=later()) >= 4
    assert mine(tenant.id) == []
    relayed = take_changes(tenant.id)
    assert sorted(m["change"] for m in relayed) == ["created", "created", "created", "events"]
    assert deliver(app, "apply_contact_changes", CONTACT_CHANGES_QUEUE, relayed, times=2) == []
    drain(app)
    assert api.get(f"/segments/{segment}", key=key).json["member_count"] == 3


def test_a_change_that_was_queued_leaves_nothing_in_the_outbox(api, app, tenant):
    assert api.post("/contacts", key=tenant.admin_key, json={"external_id": "p-9"}).status == 201
    assert mine(tenant.id) == []
    assert [m["change"] for m in take_changes(tenant.id)] == ["created"]


def test_a_transition_sqs_refused_is_relayed_from_the_membership_outbox_once(api, app, tenant, monkeypatch):
    key = tenant.admin_key
    api.post("/tags", key=key, json={"name": "vip"})
    segment = make_segment(api, app, tenant, {"tag": "vip"}, "VIPs")
    assert api.post("/contacts", key=key, json={"external_id": "p-1", "tags": ["vip"]}).status == 201
    real_send = queues.send_messages
    monkeypatch.setattr(queues, "send_messages", refusing(MEMBERSHIP_EVENTS_QUEUE))
    changed = take_changes(tenant.id)
    assert deliver(app, "apply_contact_changes", CONTACT_CHANGES_QUEUE, changed) != []  # committed, not queued
    monkeypatch.setattr(queues, "send_messages", real_send)
    assert deliver(app, "apply_contact_changes", CONTACT_CHANGES_QUEUE, changed, times=2) == []
    assert take_messages(MEMBERSHIP_EVENTS_QUEUE, tenant.id) == []  # nothing moves again; the event waits
    assert api.get(f"/segments/{segment}", key=key).json["member_count"] == 1

    def relay_later() -> int:
        return membership.relay_pending(left_unqueued, tenant_context, later())

    assert membership.relay_pending(left_unqueued, tenant_context, lambda: datetime.now(UTC)) == 0
    assert relay_later() >= 1
    relay_later()
    (entered,) = take_messages(MEMBERSHIP_EVENTS_QUEUE, tenant.id)
    assert (entered["type"], entered["segment_id"]) == ("segment.entered", segment)
