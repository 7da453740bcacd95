"""Firing triggers on occurrences: a contact change (contact.created, tag.added, event.received) or a
membership event (segment.entered, segment.exited) fires each matching trigger for that one contact.

The contact is read with its events, checked against the trigger's segments (for the event types where
they filter) and conditions, and every action is applied; then the firing is recorded with the run's
counters in one transaction, so redelivery never fires twice.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any

from chalicelib.domain import triggers as rules
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.contacts import Contact
from chalicelib.domain.engagements import Reward
from chalicelib.domain.engine import BrokenReference, CompiledCriteria
from chalicelib.domain.ids import stable_id
from chalicelib.domain.population import Population
from chalicelib.domain.triggers import Run, Trigger
from chalicelib.logs import logger
from chalicelib.ports.messages import ContactChanged
from chalicelib.services import actions, webhooks
from chalicelib.services.context import TenantContext
from chalicelib.services.membership import segments_holding

# --- firing on occurrences -----------------------------------------------------------------------------


def _events_run(trigger_id: str, now: datetime) -> Run:
    """Event-driven firings are counted in one run per trigger and UTC day (ids sort by time, as all runs')."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    run_id = stable_id("run", at_ms=int(day.timestamp() * 1000), seed=f"{trigger_id}|events")
    return Run(run_id, "events", to_rfc3339(day), None, None, 0)


def on_contact_change(ctx: TenantContext, message: ContactChanged, clock: Clock = system_clock) -> int:
    """Fire the contact.created / tag.added / event.received triggers a contact change matches."""
    occurrences = rules.change_occurrences(message)
    return _fire_all(ctx, occurrences, clock) if occurrences else 0


def on_membership_event(ctx: TenantContext, event: dict[str, Any], clock: Clock = system_clock) -> int:
    """Fire the segment.entered / segment.exited triggers of the event's segment."""
    occurrence = rules.membership_occurrence(event)
    return _fire_all(ctx, [occurrence], clock)


def _fire_all(ctx: TenantContext, occurrences: list[rules.Occurrence], clock: Clock) -> int:
    kinds = {o.type for o in occurrences}
    triggers = [t for t in ctx.triggers if t.enabled and t.event["type"] in kinds]
    fired = 0
    for trigger in triggers:
        context = TriggerContext(ctx, trigger)
        for occurrence in occurrences:
            for cause in rules.causes(trigger.event, occurrence):
                fired += _fire(context, occurrence, cause, clock)
    return fired


def _fire(context: TriggerContext, occurrence: rules.Occurrence, cause: str, clock: Clock) -> int:
    tenant_id, trigger = context.tenant_id, context.trigger
    key = rules.firing_key(trigger.id, occurrence.contact_id, cause)
    if context.tenant.ports.triggers.has_fired(occurrence.contact_id, key):
        return 0  # a redelivery
    now = clock()
    run = _events_run(trigger.id, now)
    if not rules.may_fire(occurrence.depth):
        logger.warning(
            "trigger chain stopped",
            extra={"tenant_id": tenant_id, "trigger_id": trigger.id, "depth": occurrence.depth},
        )
        outcome = "stopped"
    else:
        contact, events = context.tenant.ports.contacts.read_contact(occurrence.contact_id)
        if contact is None:
            return 0
        filter_by_segments = trigger.event["type"] not in (rules.SEGMENT_ENTERED, rules.SEGMENT_EXITED)
        outcome = apply_trigger(context, contact, events, key, occurrence.depth, now, filter_by_segments)
    if outcome == "applied":  # before the firing is recorded: a redelivery after a stop reports it again
        webhooks.trigger_fired(context.tenant, trigger.id, occurrence.contact_id, key, to_rfc3339(now))
    counts = {"contacts": 1, outcome: 1}
    triggers = context.tenant.ports.triggers
    return int(triggers.record_firing(trigger.id, occurrence.contact_id, key, run, counts, to_rfc3339(now)))


class TriggerContext:
    """One trigger of one tenant, with what checking and applying it needs from the tenant read (and its
    conditions compiled) once per occurrence or run batch, not once per contact."""

    def __init__(self, tenant: TenantContext, trigger: Trigger) -> None:
        self.tenant, self.trigger = tenant, trigger

    @property
    def tenant_id(self) -> str:
        return self.tenant.tenant_id

    @property
    def actor(self) -> actions.Actor:
        return actions.Actor("trigger", self.trigger.id, self.trigger.name)

    @cached_property
    def _conditions(self) -> CompiledCriteria | None:
        """None when a segment the conditions name is gone: then they cannot hold."""
        assert self.trigger.conditions is not None
        try:
            return self.tenant.compile(self.trigger.conditions)
        except BrokenReference:
            return None

    def meets_conditions(self, contact: Contact, events: list[dict[str, Any]], now: datetime) -> bool:
        if self.trigger.conditions is None:
            return True
        compiled = self._conditions
        return compiled is not None and bool(compiled.evaluate(Population([contact], {contact.id: events}), now)[0])


def apply_trigger(
    context: TriggerContext,
    contact: Contact,
    events: list[dict[str, Any]],
    key: str,
    depth: int,
    now: datetime,
    filter_by_segments: bool,
    rewards: list[tuple[int, Reward]] | None = None,
) -> str:
    """Check and apply the trigger for one contact: "applied", "skipped" or "failed". Given ``rewards``
    (a run's batch), reward lines are added there for the caller to write together."""
    tenant_id, trigger = context.tenant_id, context.trigger
    segment_ids = trigger.event.get("segments") or []
    if filter_by_segments and segment_ids and not segments_holding(context.tenant, contact.ordinal, segment_ids):
        return "skipped"
    if not context.meets_conditions(contact, events, now):
        return "skipped"
    failed = False
    for action in trigger.actions:
        try:
            actions.apply_action(context.tenant, context.actor, action, contact, key, depth, now, rewards)
        except actions.SendLater:
            raise  # SQS delivers the message again; the actions already applied are idempotent
        except Exception:  # one action failing must not stop the others; the run counts it
            logger.exception(
                "trigger action failed",
                extra={"tenant_id": tenant_id, "trigger_id": trigger.id, "action": action["type"]},
            )
            failed = True
    return "failed" if failed else "applied"
