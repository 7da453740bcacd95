"""Triggers (services/triggers.py, trigger_firing.py, trigger_runs.py) on in-memory ports: declaring them,
firing on contact changes and membership events once however often delivered, and scheduled runs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.clock import system_clock
from chalicelib.domain.contacts import contact_id_for
from chalicelib.domain.errors import ValidationFailed
from chalicelib.resources import TRIGGER_RUNS_QUEUE
from chalicelib.services import evaluation, jobs, shards, trigger_firing, trigger_runs, triggers
from chalicelib.services.context import TenantContext
from tests.support.fakes import InMemoryCatalog, fake_context
from tests.support.on_fakes import create, put, run_jobs

REWARD = [{"type": "reward", "amount": 2, "currency": "EUR"}]


@pytest.fixture(autouse=True)
def evaluation_kind():
    jobs.register_kinds(evaluation.JOB_KINDS | shards.JOB_KINDS)


@pytest.fixture
def ctx() -> TenantContext:
    return fake_context("ten_1", catalog=InMemoryCatalog(tags={"vip"}))


def change(contact_id: str, **fields) -> dict:
    return {"kind": "contact.changed", "tenant_id": "ten_1", "contact_id": contact_id, "version": 1,
            "change": "created", "tags_added": [], "events": [], "depth": 0, **fields}  # fmt: skip


def rewards_of(ctx: TenantContext, ordinal: int) -> list:
    return ctx.ports.engagements.all_rewards(contact_id_for(ordinal), ordinal)


def test_a_contact_created_trigger_rewards_each_new_contact_once(ctx):
    put(ctx, 1, "vip")
    made = triggers.create_trigger(ctx, {"name": "Welcome", "event": {"type": "contact.created"}, "actions": REWARD})
    assert made["enabled"] and made["event"]["type"] == "contact.created"
    for _ in range(2):  # the same change, delivered twice
        trigger_firing.on_contact_change(ctx, change(contact_id_for(1)))
    (reward,) = rewards_of(ctx, 1)
    assert (reward.amount, reward.currency, reward.source["id"]) == (2, "EUR", made["id"])
    (run,) = triggers.runs(ctx, made["id"], 10, None)["items"]
    assert run["kind"] == "events" and (run["contacts"], run["actions_applied"]) == (1, 1)


def test_conditions_and_tag_events_decide_who_is_rewarded(ctx):
    put(ctx, 1, "vip")
    put(ctx, 2)
    trigger = triggers.create_trigger(ctx, {"name": "VIP tag", "event": {"type": "tag.added", "tag": "vip"},
                                            "actions": REWARD})  # fmt: skip
    trigger_firing.on_contact_change(ctx, change(contact_id_for(1), change="updated", tags_added=["vip"]))
    trigger_firing.on_contact_change(ctx, change(contact_id_for(2), change="updated", tags_added=["other"]))
    assert len(rewards_of(ctx, 1)) == 1 and rewards_of(ctx, 2) == []
    with pytest.raises(ValidationFailed):
        triggers.create_trigger(ctx, {"name": "x", "event": {"type": "tag.added", "tag": "nope"}, "actions": REWARD})
    assert triggers.get_trigger(ctx, trigger["id"])["name"] == "VIP tag"


def test_a_segment_entered_trigger_fires_for_the_membership_event(ctx):
    put(ctx, 1, "vip")
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    triggers.create_trigger(
        ctx, {"name": "Joined", "event": {"type": "segment.entered", "segments": [vips["id"]]}, "actions": REWARD}
    )
    event = {"id": "mev_1", "type": "segment.entered", "tenant_id": "ten_1", "segment_id": vips["id"],
             "contact_id": contact_id_for(1), "cause": {"depth": 0}, "at": "2026-11-30T10:00:00Z"}  # fmt: skip
    assert trigger_firing.on_membership_event(ctx, event) == 1
    assert trigger_firing.on_membership_event(ctx, event) == 0  # redelivered
    assert len(rewards_of(ctx, 1)) == 1


def test_a_scheduled_run_rewards_the_members_batch_by_batch_once_and_moves_the_schedule_on(ctx):
    for ordinal in (1, 2, 3):
        put(ctx, ordinal, "vip")
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    made = triggers.create_trigger(ctx, {"name": "Daily", "actions": REWARD,
                                         "event": {"type": "schedule", "expression": "rate(1 day)",
                                                   "segments": [vips["id"]]}})  # fmt: skip
    due = system_clock() + timedelta(days=1, minutes=1)
    contexts = {"ten_1": ctx}
    assert trigger_runs.start_due(lambda before: [("ten_1", made["id"])], contexts.__getitem__, lambda: due) == 1
    batches = ctx.ports.queues.take(TRIGGER_RUNS_QUEUE)
    for message in batches + batches:
        trigger_runs.run_batch(ctx, message)
    assert [len(rewards_of(ctx, o)) for o in (1, 2, 3)] == [1, 1, 1]
    (run,) = triggers.runs(ctx, made["id"], 10, None)["items"]
    assert run["kind"] == "schedule" and run["status"] == "finished" and run["actions_applied"] == 3
    assert triggers.get_trigger(ctx, made["id"])["next_run_at"] > made["next_run_at"]
