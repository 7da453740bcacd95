"""Real-time membership (services/membership.py) on in-memory ports: a changed contact moves between
segments once, however often its change is delivered, and the move is announced once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.contacts import contact_id_for
from chalicelib.ports.queues import SendFailed
from chalicelib.resources import JOBS_QUEUE, MEMBERSHIP_EVENTS_QUEUE
from chalicelib.services import evaluation, jobs, membership, segments, shards
from tests.support.fakes import InMemoryCatalog, fake_context
from tests.support.on_fakes import create, members, put, run_jobs

CAUSE = {"change": "updated", "source": "api", "version": 2, "depth": 0}


@pytest.fixture(autouse=True)
def evaluation_kind():
    jobs.register_kinds(evaluation.JOB_KINDS | shards.JOB_KINDS)


@pytest.fixture
def ctx():
    return fake_context(catalog=InMemoryCatalog(tags={"vip", "local"}))


def test_a_change_moves_the_contact_once_and_announces_it_once(ctx):
    put(ctx, 1, "vip")
    put(ctx, 2)
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    put(ctx, 2, "vip")
    assert membership.update_contact(ctx, contact_id_for(2), CAUSE) == 1
    assert membership.update_contact(ctx, contact_id_for(2), CAUSE) == 0  # redelivered
    (entered,) = ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE)
    assert (entered["type"], entered["segment_id"], entered["cause"]) == ("segment.entered", vips["id"], CAUSE)
    assert sorted(members(ctx, vips["id"])) == ["p-1", "p-2"]
    assert segments.get_segment(ctx, vips["id"])["member_count"] == 2
    put(ctx, 2)
    membership.update_contact(ctx, contact_id_for(2), CAUSE)
    (exited,) = ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE)
    assert exited["type"] == "segment.exited" and exited["id"] != entered["id"]
    assert segments.get_segment(ctx, vips["id"])["member_count"] == 1


def test_a_contact_that_changes_during_an_evaluation_lands_in_the_new_generation_too(ctx):
    put(ctx, 1, "vip")
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    running = segments.evaluate(ctx, vips["id"])
    put(ctx, 2, "vip")
    membership.update_contact(ctx, contact_id_for(2), CAUSE)
    assert sorted(members(ctx, vips["id"])) == ["p-1", "p-2"]  # readers see it at once (published generation)
    assert 2 in ctx.ports.segments.members(vips["id"], running["id"])  # and the generation being built has it
    assert [e["type"] for e in ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE)] == ["segment.entered"]
    for message in ctx.ports.queues.take(JOBS_QUEUE):
        jobs.run_chunk(ctx, message)
    assert ctx.ports.segments.get(vips["id"]).generation == running["id"]
    assert sorted(members(ctx, vips["id"])) == ["p-1", "p-2"]
    assert ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE) == []  # the flip does not announce p-2 a second time


def test_evaluations_running_together_do_not_send_each_other_to_check_the_same_contacts_again(ctx, monkeypatch):
    """Each evaluation worker checks again, in its own segment, the contacts whose stamp moved after it read
    their shard; a check that moves nothing writes nothing, or every other running evaluation would check
    those contacts again."""
    for ordinal in range(1, 41):
        put(ctx, ordinal, *(["vip"] if ordinal % 2 else []), city="Toronto" if ordinal % 3 == 0 else None)
    definitions = {  # none of them an index plan: a job per shard, each checking its shard's changed contacts
        f"S{n}": {
            "any": [
                {"tag": "vip"},
                {"attr": "city", "op": "eq", "value": "Toronto"},
                {"attr": "city", "op": "eq", "value": f"Town {n}"},
            ]
        }
        for n in range(8)
    }
    created = {name: create(ctx, criteria, name) for name, criteria in definitions.items()}
    for ordinal in range(1, 41):  # the contacts change while the eight evaluations are queued
        put(ctx, ordinal, *(["vip"] if ordinal % 4 == 0 else []), city="Toronto" if ordinal % 5 == 0 else None)
        membership.update_contact(ctx, contact_id_for(ordinal), CAUSE)
    commits = []
    real_commit = ctx.ports.membership.commit
    monkeypatch.setattr(ctx.ports.membership, "commit", lambda change: commits.append(change) or real_commit(change))
    run_jobs(ctx)
    expected = sorted(f"p-{o}" for o in range(1, 41) if o % 4 == 0 or o % 5 == 0)
    assert {name: sorted(members(ctx, segment["id"])) for name, segment in created.items()} == {
        name: expected for name in definitions
    }
    # the checks write only what moved, never the stamp alone (before: 320 stamp-only commits here, one per
    # check; with workers running at once each also sent the others to check the contact again)
    assert all(change.moves for change in commits)


def test_segments_without_a_membership_yet_are_left_alone(ctx):
    put(ctx, 1, "vip")
    assert membership.update_contact(ctx, contact_id_for(1), CAUSE) == 0  # no segment at all
    create(ctx, {"tag": "vip"})  # evaluating, its job not run: the update writes its pending generation
    put(ctx, 1, "vip", "local")
    assert membership.update_contact(ctx, contact_id_for(1), CAUSE) == 0  # nothing published to announce
    assert membership.update_contact(ctx, "not-a-contact-id", CAUSE) == 0


def test_events_a_stopped_update_left_unqueued_go_out_once_with_the_minute_relay(ctx, monkeypatch):
    put(ctx, 1)
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    put(ctx, 1, "vip")

    def refusing(queue_name, messages, delay_seconds=0):
        raise SendFailed("SQS is down")

    with monkeypatch.context() as down:
        down.setattr(ctx.ports.queues, "send", refusing)
        with pytest.raises(SendFailed):
            membership.update_contact(ctx, contact_id_for(1), CAUSE)  # committed, not queued: SQS retries it
    assert members(ctx, vips["id"]) == ["p-1"]
    assert membership.update_contact(ctx, contact_id_for(1), CAUSE) == 0  # the retry: nothing moves any more
    assert ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE) == []  # and it does not read the outbox back

    def left_unqueued(before: str) -> list[tuple[str, str]]:
        stored = ctx.ports.membership.pending_events(contact_id_for(1), 1)
        return [(ctx.tenant_id, contact_id_for(1))] if any(e["at"] < before for e in stored) else []

    relay = {ctx.tenant_id: ctx}.__getitem__
    now = datetime.now(UTC)
    assert membership.relay_pending(left_unqueued, relay, lambda: now) == 0  # young: its update may still queue it
    for _ in range(2):
        membership.relay_pending(left_unqueued, relay, lambda: now + timedelta(minutes=2))
    (entered,) = ctx.ports.queues.take(MEMBERSHIP_EVENTS_QUEUE)
    assert (entered["type"], entered["segment_id"]) == ("segment.entered", vips["id"])
    assert ctx.ports.membership.pending_events(contact_id_for(1), 1) == []
