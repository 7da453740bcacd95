"""What one contact change sets off (services/reactions.py), end to end on in-memory ports: the contact moves
into a segment, a challenge rewards it, a trigger fires — once each, however often the change is delivered."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.clock import system_clock, to_rfc3339
from chalicelib.domain.contacts import contact_id_for
from chalicelib.resources import MEMBERSHIP_EVENTS_QUEUE
from chalicelib.services import engagements, evaluation, jobs, reactions, triggers
from tests.support.fakes import InMemoryCatalog, fake_context
from tests.support.on_fakes import create, members, put, run_jobs


@pytest.fixture(autouse=True)
def evaluation_kind():
    jobs.register_kinds(evaluation.JOB_KINDS)


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
    for _ in range(2):
        reactions.react(ctx, change)
    assert members(ctx, vips["id"]) == ["p-1"]
    assert [e["type"] for e in ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE)] == ["segment.entered"]
    rewards = ctx.ports.engagements.all_rewards(contact_id_for(1), 1)
    assert sorted((r.source["type"], r.amount) for r in rewards) == [("challenge", 5), ("trigger", 1)]
