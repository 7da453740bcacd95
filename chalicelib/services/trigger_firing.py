"""Firing triggers on occurrences: a contact change (contact.created, tag.added, event.received) or a
membership event (segment.entered, segment.exited) fires each matching trigger for that one contact.

The contact is read with its events, checked against the trigger's segments (for the event types where
they filter) and conditions, and every action is applied; then the firing is recorded with the run's
counters in one transaction, so redelivery never fires twice.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from typing import Any

from chalicelib.domain import campaigns as campaign_rules
from chalicelib.domain import triggers as rules
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.contacts import Contact
from chalicelib.domain.engagements import Reward
from chalicelib.domain.engine import BrokenReference, CompiledCriteria
from chalicelib.domain.ids import stable_id
from chalicelib.domain.population import Population
from chalicelib.domain.templates import Templates
from chalicelib.domain.triggers import Run, Trigger
from chalicelib.logs import logger
from chalicelib.ports.messages import ContactChanged
from chalicelib.services import engagements, mail, sending, webhooks
from chalicelib.services.contacts import contact_view, rewrite_contact
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
    happened = rules.Occurrence(
        "", contact_id=message["contact_id"], depth=int(message.get("depth", 0)), version=message["version"]
    )
    occurrences = []
    if message["change"] == "created":
        occurrences.append(replace(happened, type=rules.CONTACT_CREATED))
    if message.get("tags_added"):
        occurrences.append(replace(happened, type=rules.TAG_ADDED, tags_added=tuple(message["tags_added"])))
    if message.get("events"):
        occurrences.append(replace(happened, type=rules.EVENT_RECEIVED, events=tuple(message["events"])))
    return _fire_all(ctx, occurrences, clock) if occurrences else 0


def on_membership_event(ctx: TenantContext, event: dict[str, Any], clock: Clock = system_clock) -> int:
    """Fire the segment.entered / segment.exited triggers of the event's segment."""
    occurrence = rules.Occurrence(
        event["type"],
        contact_id=event["contact_id"],
        depth=int((event.get("cause") or {}).get("depth", 0)),
        segment_id=event["segment_id"],
        event_id=event["id"],
    )
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
            _act(context, action, contact, key, depth, now, rewards)
        except SendLater:
            raise  # SQS delivers the message again; the actions already applied are idempotent
        except Exception:  # one action failing must not stop the others; the run counts it
            logger.exception(
                "trigger action failed",
                extra={"tenant_id": tenant_id, "trigger_id": trigger.id, "action": action["type"]},
            )
            failed = True
    return "failed" if failed else "applied"


def _act(
    context: TriggerContext,
    action: dict[str, Any],
    contact: Contact,
    key: str,
    depth: int,
    now: datetime,
    rewards: list[tuple[int, Reward]] | None,
) -> None:
    trigger, kind = context.trigger, action["type"]
    if kind in (rules.ADD_TAG, rules.REMOVE_TAG):
        _change_tag(context, contact, action["tag"], kind == rules.ADD_TAG, depth)
    elif kind == rules.REWARD:
        source = {"type": "trigger", "id": trigger.id, "name": trigger.name}
        line = engagements.reward_line(contact.id, action, f"trigger|{key}", source, to_rfc3339(now))
        if rewards is None:
            context.tenant.ports.engagements.add_reward(contact.ordinal, line)
            webhooks.rewards_granted(context.tenant, [line])
        else:
            rewards.append((contact.ordinal, line))
    elif kind == rules.ANNOUNCE:
        context.tenant.ports.triggers.give_announcement(contact.id, action["announcement_id"], to_rfc3339(now))
    elif kind == rules.WEBHOOK:
        webhooks.trigger_fired(context.tenant, trigger.id, contact.id, key, to_rfc3339(now), only=action["webhook_id"])
    else:
        _send_email(context.tenant, trigger, action, contact, key)


def _change_tag(context: TriggerContext, contact: Contact, tag: str, add: bool, depth: int) -> None:
    if tag not in context.tenant.usable_tags:
        raise ValueError(f"tag {tag} no longer exists")

    def compute(before: Contact, now: str) -> Contact:
        tags = before.tags | {tag} if add else before.tags - {tag}
        if tags == before.tags:
            return before
        return replace(before, tags=frozenset(tags), version=before.version + 1, updated_at=now)

    rewrite_contact(
        context.tenant,
        lambda: context.tenant.ports.contacts.get_contact(contact.id),
        compute,
        "tags",
        source=f"trigger:{context.trigger.id}",
        depth=depth + 1,
    )


class SendLater(Exception):
    """SES or the tenant's send rate cannot take the email now: the queue message is retried later."""


def _send_email(ctx: TenantContext, trigger: Trigger, action: dict[str, Any], contact: Contact, key: str) -> None:
    """Like a campaign email: never to a suppressed address, in the tenant's send rate, claimed before SES,
    never sent twice; throttled or refused by the account, it is released and the message retried."""
    if not contact.email:
        return
    email = contact.email.lower()
    if ctx.ports.suppressions.get_suppression(email) is not None:
        return
    rate = int(ctx.settings["send_rate_per_second"])
    slot = ctx.ports.sends.reserve_send_slots(1, rate, int(time.time() * 1000), sending.MAX_AHEAD_MS)
    if slot is None:
        raise SendLater("the tenant's send rate is taken for the next seconds")
    if not ctx.ports.triggers.claim_mail(contact.id, key):
        return  # claimed by an earlier delivery: sent, or its outcome unknown; either way not again
    time.sleep(max(0.0, slot / 1000 - time.time()))
    templates = Templates(action["subject"], action.get("html"), action.get("text"))
    tags = {"trigger_id": trigger.id, "contact_id": contact.id}
    tracked = mail.tracked(ctx, None)  # a trigger's email follows the tenant's setting
    delivery = mail.deliver(ctx, action["from"], email, templates, contact_view(contact), tags, tracked=tracked)
    if delivery.account_wide:
        ctx.ports.triggers.release_mail(contact.id, key)
        raise SendLater(delivery.reason or delivery.status)
    state = {campaign_rules.DELIVERED: "sent", campaign_rules.UNCERTAIN: "unknown"}.get(delivery.status, "failed")
    ctx.ports.triggers.settle_mail(contact.id, key, state, delivery.message_id, delivery.reason)
    if state == "failed":
        raise RuntimeError(f"the email was not sent: {delivery.reason}")
