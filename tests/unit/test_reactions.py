"""What one contact change sets off (services/reactions.py), end to end on in-memory ports: the contact moves
into a segment, a challenge rewards it, a trigger fires — once each, however often the change is delivered."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.clock import system_clock, to_rfc3339
from chalicelib.domain.contacts import contact_id_for
from chalicelib.resources import MEMBERSHIP_EVENTS_QUEUE
from chalicelib.services import engagements, evaluation, jobs, membership, reactions, shards, triggers
from tests.support.fakes import InMemoryCatalog, fake_context
from tests.support.on_fakes import create, members, put, run_jobs


@pytest.fixture(autouse=True)
def evaluation_kind():
    jobs.register_kinds(evaluation.JOB_KINDS | shards.JOB_KINDS)


def test_a_change_moves_membership_rewards_the_challenge_and_fires_the_trigger_once():
    ctx = fake_context("ten_1", catalog=InMemoryCatalog(tags={"vip"}))
    put(ctx, 1)
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    now = system_clock()
    window = {"starts_at": to_rfc3339(now - timedelta(days=1)), "ends_at": to_rfc3339(now + timedelta(days=7))}
    goal = {"goal": {"event_type": "purchase", "count": 1}, "reward": {"amount": 5}}
    engagements.create(ctx, "challenge", {"name": "Buy", "segments": [vips["id"]], **window, **goal})
    triggers.create_trigger(ctx, {"name": "VIP", "event": {"type": "tag.added", "tag": "vip"},
                                  "actions": [{"type": "reward", "amount": 1}]})  # fmt: skip
    put(ctx, 1, "vip", bought_days_ago=0.5)  # the contact was tagged and bought
    change = {"kind": "contact.changed", "id": "chg_1", "tenant_id": "ten_1", "contact_id": contact_id_for(1),
              "version": 2, "change": "updated", "tags_added": ["vip"], "tags_removed": [], "event_types": ["purchase"],
              "events": [], "source": "api", "depth": 0, "at": to_rfc3339(now)}  # fmt: skip
    for _ in range(2):  # two batches
        reactions.BatchReactions({"ten_1": ctx}.__getitem__).react(change)
    assert members(ctx, vips["id"]) == ["p-1"]
    assert [e["type"] for e in ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE)] == ["segment.entered"]
    rewards = ctx.ports.engagements.all_rewards(contact_id_for(1), 1)
    assert sorted((r.source["type"], r.amount) for r in rewards) == [("challenge", 5), ("trigger", 1)]


def a_change(contact: int, version: int, change: str = "updated", **fields) -> dict:
    return {"kind": "contact.changed", "id": f"chg_{contact}_{version}", "tenant_id": "ten_1",
            "contact_id": contact_id_for(contact), "version": version, "change": change, "tags_added": [],
            "tags_removed": [], "event_types": [], "events": [], "source": "api", "depth": 0,
            "at": to_rfc3339(system_clock()), **fields}  # fmt: skip


def test_a_batch_brings_each_contact_up_to_date_once_and_gives_every_message_to_the_triggers(monkeypatch):
    ctx = fake_context("ten_1", catalog=InMemoryCatalog(tags={"vip", "local"}))
    put(ctx, 1)
    put(ctx, 2)
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    for tag in ("vip", "local"):
        triggers.create_trigger(ctx, {"name": tag, "event": {"type": "tag.added", "tag": tag},
                                      "actions": [{"type": "reward", "amount": 1}]})  # fmt: skip
    put(ctx, 1, "vip", "local")
    put(ctx, 2, "vip")
    batch = [a_change(1, 2, tags_added=["vip"]), a_change(2, 2, tags_added=["vip"]),
             a_change(1, 3, tags_added=["local"]), a_change(1, 2, tags_added=["vip"])]  # fmt: skip
    updated = []
    real_update = reactions.membership.update_contact
    monkeypatch.setattr(
        reactions.membership,
        "update_contact",
        lambda c, cid, cause, read=None: updated.append(cid) or real_update(c, cid, cause, read=read),
    )
    reacting = reactions.BatchReactions({"ten_1": ctx}.__getitem__)
    for change in batch:
        reacting.react(change)
    assert updated == [contact_id_for(1), contact_id_for(2)]  # once a contact, in the batch's order
    assert members(ctx, vips["id"]) == ["p-1", "p-2"]
    assert len(ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE)) == 2
    rewards = ctx.ports.engagements.all_rewards(contact_id_for(1), 1)
    assert len(rewards) == 2  # vip and local: each message reached the triggers (the repeat fired nothing)


def test_a_contact_whose_update_failed_is_tried_again_by_its_next_message_in_the_batch(monkeypatch):
    ctx = fake_context("ten_1", catalog=InMemoryCatalog(tags={"vip"}))
    put(ctx, 1, "vip")
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    put(ctx, 2, "vip")
    real_update, calls = reactions.membership.update_contact, []

    def failing_once(c, contact_id, cause, read=None):
        calls.append(contact_id)
        if len(calls) == 1:
            raise RuntimeError("DynamoDB throttled")
        return real_update(c, contact_id, cause, read=read)

    monkeypatch.setattr(reactions.membership, "update_contact", failing_once)
    reacting = reactions.BatchReactions({"ten_1": ctx}.__getitem__)
    with pytest.raises(RuntimeError):
        reacting.react(a_change(2, 2))  # this record fails: SQS retries it
    reacting.react(a_change(2, 3))
    reacting.react(a_change(2, 4))
    assert calls == [contact_id_for(2)] * 2 and members(ctx, vips["id"]) == ["p-1", "p-2"]


def test_a_prepared_batch_reads_its_contacts_together_and_a_stale_read_is_read_again(monkeypatch):
    ctx = fake_context("ten_1", catalog=InMemoryCatalog(tags={"vip"}))
    for ordinal in (1, 2, 3):
        put(ctx, ordinal)
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    for ordinal in (1, 2, 3):
        put(ctx, ordinal, "vip")
    contact_reads, stamp_reads = [], []
    real_read_contacts, real_read_stamps = ctx.ports.contacts.read_contacts, ctx.ports.membership.read_stamps
    monkeypatch.setattr(
        ctx.ports.contacts, "read_contacts", lambda ids: contact_reads.append(list(ids)) or real_read_contacts(ids)
    )
    monkeypatch.setattr(
        ctx.ports.membership, "read_stamps", lambda pairs: stamp_reads.append(pairs) or real_read_stamps(pairs)
    )
    reacting = reactions.BatchReactions({"ten_1": ctx}.__getitem__)
    batch = [a_change(1, 2, tags_added=["vip"]), a_change(2, 2, tags_added=["vip"]), a_change(3, 2)]
    reacting.prepare(batch)
    assert len(stamp_reads) == 1 and len(stamp_reads[0]) == 3  # one read of every stamp
    membership.update_contact(ctx, contact_id_for(3), {"change": "tags"})  # another worker's update lands first
    for change in batch:
        reacting.react(change)
    three = [contact_id_for(3)]
    assert contact_reads == [[contact_id_for(o) for o in (1, 2, 3)], three, three]  # the batch, that update, the retry
    assert members(ctx, vips["id"]) == ["p-1", "p-2", "p-3"]
    events = ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE)
    assert sorted((e["type"], e["contact_id"]) for e in events) == [
        ("segment.entered", contact_id_for(o)) for o in (1, 2, 3)
    ]  # once each
