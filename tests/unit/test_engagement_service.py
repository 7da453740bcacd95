"""Challenges and announcements (services/engagements.py) on in-memory ports: who they target, rewards granted
once however often a change is delivered, and what a deleted segment does to them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.clock import system_clock, to_rfc3339
from chalicelib.domain.contacts import contact_id_for
from chalicelib.domain.errors import ConfirmationRequired, NotFound, ValidationFailed
from chalicelib.services import engagements, evaluation, jobs, segments, shards
from tests.support.fakes import InMemoryCatalog, fake_context
from tests.support.on_fakes import create, put, run_jobs


@pytest.fixture(autouse=True)
def evaluation_kind():
    jobs.register_kinds(evaluation.JOB_KINDS | shards.JOB_KINDS)


@pytest.fixture
def ctx():
    context = fake_context(catalog=InMemoryCatalog(tags={"vip"}))
    put(context, 1, "vip", bought_days_ago=0.5)
    put(context, 2, bought_days_ago=0.5)
    return context


def window(days_before: float = 1, days_after: float = 7) -> dict[str, str]:
    now = system_clock()
    return {
        "starts_at": to_rfc3339(now - timedelta(days=days_before)),
        "ends_at": to_rfc3339(now + timedelta(days=days_after)),
    }


def challenge(ctx, segment_id: str, **body) -> dict:
    fields = {"name": "Buy once", "segments": [segment_id], **window(), "goal": {"event_type": "purchase", "count": 1},
              "reward": {"amount": 5, "currency": "EUR"}}  # fmt: skip
    return engagements.create(ctx, "challenge", {**fields, **body})


def test_a_challenge_rewards_the_members_who_reach_its_goal_once(ctx):
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    made = challenge(ctx, vips["id"])
    assert made["active"] and made["status"] == "enabled"
    assert engagements.award_challenges(ctx, contact_id_for(1)) == 1
    assert engagements.award_challenges(ctx, contact_id_for(1)) == 0  # the same change, delivered again
    assert engagements.award_challenges(ctx, contact_id_for(2)) == 0  # not in the segment
    (reward,) = ctx.ports.engagements.all_rewards(contact_id_for(1), 1)
    assert (reward.amount, reward.currency, reward.source["id"]) == (5, "EUR", made["id"])


def test_a_challenge_outside_its_window_rewards_no_one(ctx):
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    challenge(ctx, vips["id"], **window(days_before=-1, days_after=7))  # starts tomorrow
    assert engagements.award_challenges(ctx, contact_id_for(1)) == 0


def test_targets_must_be_segments_of_the_tenant(ctx):
    with pytest.raises(ValidationFailed):
        challenge(ctx, "seg_missing")
    with pytest.raises(NotFound):
        engagements.get(ctx, "challenge", "chl_missing")


def test_a_deleted_segment_disables_what_it_alone_targeted(ctx):
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    made = engagements.create(
        ctx, "announcement", {"title": "Hello", "body": "Hi", "segments": [vips["id"]], **window()}
    )
    with pytest.raises(ConfirmationRequired) as review:
        segments.delete_segment(ctx, vips["id"], confirm=False)
    assert review.value.to_body()["error"]["details"]["dependents"] == []  # registered only by the composition
    release = dict((kind, drop) for kind, _, drop in engagements.DEPENDENTS)["segment"]
    release(ctx, vips["id"], f"segment {vips['id']} was deleted")
    after = engagements.get(ctx, "announcement", made["id"])
    assert after["segments"] == [] and after["status"] == "disabled" and "was deleted" in after["status_reason"]
