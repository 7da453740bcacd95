"""Scheduled and manual trigger runs: the members of the trigger's segments are snapshotted into batches
of ``RUN_BATCH_SIZE`` contacts, one queue message per batch; each batch is counted once however often
it is delivered, and a batch that keeps failing counts its contacts as failures so the run finishes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.domain import triggers as rules
from chalicelib.domain.clock import Clock, parse_rfc3339, system_clock, to_rfc3339
from chalicelib.domain.contacts import contact_id_for
from chalicelib.domain.engagements import Reward
from chalicelib.domain.errors import Conflict
from chalicelib.domain.ids import new_id, stable_id
from chalicelib.domain.schedules import run_after
from chalicelib.domain.triggers import Run, Trigger
from chalicelib.logs import logger
from chalicelib.ports.messages import TriggerRunBatch
from chalicelib.resources import TRIGGER_RUNS_QUEUE
from chalicelib.services import webhooks
from chalicelib.services.context import TenantContext
from chalicelib.services.membership import members_of
from chalicelib.services.trigger_firing import TriggerContext, apply_trigger
from chalicelib.services.triggers import require_trigger, run_view

RUN_BATCH_SIZE = 100


# --- scheduled and manual runs -------------------------------------------------------------------------


def _start_run(ctx: TenantContext, trigger: Trigger, kind: str, clock: Clock, run_id: str | None = None) -> Run:
    """Snapshot the members into batches, write the run, queue its batches. Given a ``run_id`` that exists
    already (a scheduled run started by a worker that stopped, or by another worker at the same minute),
    queue that run's batches again instead: a batch done before is skipped, so nothing runs twice."""
    tenant_id = ctx.tenant_id
    run_id = run_id or new_id("run")
    existing = ctx.ports.triggers.get_run(trigger.id, run_id)
    if existing is None:
        ordinals = members_of(ctx, trigger.event.get("segments") or [])
        batches = [
            [contact_id_for(o) for o in ordinals[start : start + RUN_BATCH_SIZE]]
            for start in range(0, len(ordinals), RUN_BATCH_SIZE)
        ]
        now = to_rfc3339(clock())
        run = Run(run_id, kind, now, None if batches else now, len(batches), 0)
        if not ctx.ports.triggers.start_run(trigger.id, run, batches):
            return _start_run(ctx, trigger, kind, clock, run_id)  # another worker wrote it first
    else:
        run = existing
    total = run.batches_total or 0
    ctx.ports.queues.send(
        TRIGGER_RUNS_QUEUE,
        [TriggerRunBatch(tenant_id=tenant_id, trigger_id=trigger.id, run_id=run.id, batch=n) for n in range(total)],
    )
    logger.info(
        "trigger run started",
        extra={"tenant_id": tenant_id, "trigger_id": trigger.id, "run_id": run.id, "batches": total},
    )
    return run


def run_now(ctx: TenantContext, trigger_id: str, clock: Clock = system_clock) -> dict[str, Any]:
    trigger = require_trigger(ctx, trigger_id)
    if trigger.event["type"] != rules.SCHEDULE:
        raise Conflict(
            f"Trigger {trigger_id} fires on {trigger.event['type']}; only schedule triggers run on demand.",
            {"field": "event.type"},
        )
    if not trigger.enabled:
        raise Conflict(f"Trigger {trigger_id} is disabled; enable it first.", {"field": "enabled"})
    return run_view(_start_run(ctx, trigger, "manual", clock))


def start_due(
    due: Callable[[str], list[tuple[str, str]]],
    context_for: Callable[[str], TenantContext],
    clock: Clock = system_clock,
) -> int:
    """Start a run of every schedule trigger whose time has come (the minute schedule); each time once.
    ``due`` lists the (tenant, trigger) pairs due at a time; ``context_for`` makes each tenant's context."""
    started = 0
    now = clock()
    for tenant_id, trigger_id in due(to_rfc3339(now)):
        ctx = context_for(tenant_id)
        trigger = ctx.ports.triggers.get(trigger_id)
        if trigger is None or not trigger.enabled or trigger.next_run_at is None:
            continue
        # the run of this scheduled time has an id of its own, so a worker that stopped before moving the
        # schedule on leaves a run the next minute finds (and queues again) rather than starts twice
        due_at = trigger.next_run_at
        due_ms = int(parse_rfc3339(due_at).timestamp() * 1000)
        _start_run(ctx, trigger, "schedule", clock, stable_id("run", at_ms=due_ms, seed=trigger.id))
        started += ctx.ports.triggers.advance_schedule(trigger, run_after(trigger.event["expression"], due_at, now))
    return started


def run_batch(ctx: TenantContext, message: dict[str, Any], clock: Clock = system_clock) -> dict[str, int]:
    """Apply a run's trigger to one batch of its contacts; counted once, however often delivered."""
    trigger_id, run_id, number = (message[k] for k in ("trigger_id", "run_id", "batch"))
    triggers = ctx.ports.triggers
    contact_ids, done = triggers.batch_contacts(trigger_id, run_id, number)
    trigger = triggers.get(trigger_id)
    if done:  # a redelivery: perhaps the earlier delivery stopped before stamping the run finished
        triggers.finish_run_if_complete(trigger_id, run_id, to_rfc3339(clock()))
        return {}
    counts = {"contacts": len(contact_ids)}
    if trigger is None:  # deleted while running
        counts["skipped"] = len(contact_ids)
    else:
        now = clock()
        context = TriggerContext(ctx, trigger)
        contacts = ctx.ports.contacts.get_contacts(contact_ids)
        rewards: list[tuple[int, Reward]] = []
        for contact_id in contact_ids:
            contact = contacts.get(contact_id)
            if contact is None:
                outcome = "skipped"
            else:
                events = ctx.ports.contacts.read_contact(contact_id)[1] if trigger.conditions else []
                key = rules.firing_key(trigger.id, contact_id, f"run:{run_id}")
                outcome = apply_trigger(context, contact, events, key, 0, now, False, rewards)
            counts[outcome] = counts.get(outcome, 0) + 1
        ctx.ports.engagements.put_rewards(rewards)
        webhooks.rewards_granted(ctx, [reward for _, reward in rewards])
    triggers.finish_batch(trigger_id, run_id, number, counts, to_rfc3339(clock()))
    triggers.finish_run_if_complete(trigger_id, run_id, to_rfc3339(clock()))
    return counts


def fail_batch(ctx: TenantContext, message: dict[str, Any], clock: Clock = system_clock) -> None:
    """A batch that failed every delivery (the DLQ): count its contacts as failures so the run finishes."""
    trigger_id, run_id, number = (message[k] for k in ("trigger_id", "run_id", "batch"))
    triggers = ctx.ports.triggers
    contact_ids, _ = triggers.batch_contacts(trigger_id, run_id, number)
    counts = {"contacts": len(contact_ids), "failed": len(contact_ids)}
    triggers.finish_batch(trigger_id, run_id, number, counts, to_rfc3339(clock()))
    triggers.finish_run_if_complete(trigger_id, run_id, to_rfc3339(clock()))
