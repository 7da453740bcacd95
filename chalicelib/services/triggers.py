"""Triggers: CRUD, firing on occurrences (membership events, contact changes), scheduled and manual runs.

The rules (what may be declared, which occurrence fires what, the chain bound)
are chalicelib/domain/triggers.py; the records that make each firing count once
are chalicelib/storage/triggers.py.

An occurrence fires a trigger for one contact: the contact is read with its
events, checked against the trigger's segments (for the event types where they
filter) and conditions, and every action is applied; then the firing is
recorded with the run's counters in one transaction. A scheduled or manual run
snapshots the members of the trigger's segments into batches of
``RUN_BATCH_SIZE`` contacts and queues one message per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from typing import Any

from chalicelib.domain import campaigns as campaign_rules
from chalicelib.domain import engagements as engagement_rules
from chalicelib.domain import triggers as rules
from chalicelib.domain.clock import Clock, parse_rfc3339, system_clock, to_rfc3339
from chalicelib.domain.contacts import Contact, contact_id_for
from chalicelib.domain.criteria import check_criteria
from chalicelib.domain.engagements import Reward
from chalicelib.domain.engine import BrokenReference, CompiledCriteria, compile_criteria
from chalicelib.domain.errors import Conflict, NotFound, ValidationFailed, changed_meanwhile
from chalicelib.domain.ids import new_id, stable_id
from chalicelib.domain.population import Population
from chalicelib.domain.schedules import parse_schedule
from chalicelib.domain.templates import RenderFailed, Templates, check_templates, render
from chalicelib.domain.triggers import Run, StaleTrigger, Trigger
from chalicelib.domain.validation import validate
from chalicelib.logs import logger
from chalicelib.ports.messages import TriggerRunBatch
from chalicelib.resources import TRIGGER_RUNS_QUEUE
from chalicelib.services import dependents, engagements, sending
from chalicelib.services.campaigns import check_sender, template_attributes
from chalicelib.services.contacts import contact_view, rewrite_contact
from chalicelib.services.context import TenantContext
from chalicelib.services.membership import segments_holding
from chalicelib.services.paging import page
from chalicelib.services.segments import check_targets, criteria_vocabulary
from chalicelib.services.tenants import cached_settings
from chalicelib.storage import campaigns as campaign_store
from chalicelib.storage import catalog, queues
from chalicelib.storage import contacts as contact_store
from chalicelib.storage import engagements as engagement_store
from chalicelib.storage import triggers as store

RUN_BATCH_SIZE = 100
_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "enabled": {"type": "boolean"},
    "event": rules.EVENT_SCHEMA,
    "conditions": {"type": ["object", "null"]},
    "actions": {"type": "array", "items": rules.ACTION_SCHEMA, "maxItems": 50},
}
CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "event", "actions"],
    "properties": _FIELDS,
}
PATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": _FIELDS,
}
TRIGGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "enabled", "event", "actions"],
    "properties": {
        **_FIELDS,
        "id": {"type": "string"},
        "next_run_at": {"type": ["string", "null"]},
        "status_reason": {"type": ["string", "null"]},
    },
}
RUN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "kind", "started_at", "status"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string", "enum": ["events", "schedule", "manual"]},
        "status": {"type": "string", "enum": ["running", "finished"]},
        "started_at": {"type": "string"},
        "finished_at": {"type": ["string", "null"]},
        "contacts": {"type": "integer"},
        "actions_applied": {"type": "integer"},
        "skipped": {"type": "integer"},
        "stopped_by_chain_depth": {"type": "integer"},
        "failures": {"type": "integer"},
        "progress": {"type": "object"},
        "note": {"type": ["string", "null"]},
    },
}


def trigger_view(trigger: Trigger) -> dict[str, Any]:
    return {
        "id": trigger.id,
        "name": trigger.name,
        "enabled": trigger.enabled,
        "event": trigger.event,
        "conditions": trigger.conditions,
        "actions": trigger.actions,
        "next_run_at": trigger.next_run_at,
        "status_reason": trigger.status_reason,
        "version": trigger.version,
        "created_at": trigger.created_at,
        "updated_at": trigger.updated_at,
    }


def run_view(run: Run) -> dict[str, Any]:
    counters = {name: run.counters.get(name, 0) for name in store.RUN_COUNTERS}
    return {
        "id": run.id,
        "kind": run.kind,
        "status": "finished" if run.finished_at or _day_over(run) else "running",
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "contacts": counters["contacts"],
        "actions_applied": counters["applied"],
        "skipped": counters["skipped"],
        "stopped_by_chain_depth": counters["stopped"],
        "failures": counters["failed"],
        "progress": {"batches_done": run.batches_done, "batches_total": run.batches_total},
        "note": run.note
        or (
            f"{counters['stopped']} firing(s) stopped: a chain of triggers reached depth {rules.MAX_CHAIN_DEPTH}"
            if counters["stopped"]
            else None
        ),
    }


def _day_over(run: Run) -> bool:
    """A day's run of event firings is over when the day is."""
    return run.kind == "events" and run.started_at[:10] < to_rfc3339(system_clock())[:10]


def _require(tenant_id: str, trigger_id: str) -> Trigger:
    trigger = store.get(tenant_id, trigger_id)
    if trigger is None:
        raise NotFound(f"Trigger {trigger_id} does not exist.", {"field": "id"})
    return trigger


# --- declaring -----------------------------------------------------------------------------------------


def _checked_actions(ctx: TenantContext, actions: list[dict[str, Any]], tags: set[str]) -> list[dict[str, Any]]:
    rules.check_actions(actions)
    checked = []
    for index, action in enumerate(actions):
        field = f"actions[{index}]"
        kind = action["type"]
        if kind in (rules.ADD_TAG, rules.REMOVE_TAG):
            if action["tag"] not in tags:
                raise ValidationFailed(f"{field}.tag", f"Tag {action['tag']} does not exist.")
            checked.append(dict(action))
        elif kind == rules.SEND_EMAIL:
            known = template_attributes(ctx.tenant_id)
            try:
                templates = check_templates(action["subject"], action.get("html"), action.get("text"), known)
            except ValidationFailed as problem:
                problem.details["field"] = f"{field}.{problem.details.get('field')}"
                raise
            try:
                sender = check_sender(ctx, action.get("from"))
            except ValidationFailed as problem:
                raise ValidationFailed(f"{field}.from", problem.message) from None
            checked.append(
                {
                    "type": kind,
                    "from": sender,
                    "subject": templates.subject,
                    "html": templates.html,
                    "text": templates.text,
                }
            )
        elif kind == rules.REWARD:
            checked.append({"type": kind, **engagement_rules.check_reward(action, field)})
        else:  # announce
            if engagement_store.get(ctx.tenant_id, engagement_rules.ANNOUNCEMENT, action["announcement_id"]) is None:
                raise ValidationFailed(
                    f"{field}.announcement_id", f"Announcement {action['announcement_id']} does not exist."
                )
            checked.append(dict(action))
    return checked


def _checked(ctx: TenantContext, fields: dict[str, Any], clock: Clock) -> dict[str, Any]:
    event = dict(fields["event"])
    rules.check_event_shape(event, clock())
    minimum = 1 if event["type"] in rules.NEEDS_SEGMENTS else 0
    event["segments"] = check_targets(
        ctx, "event.segments", event.get("segments") or [], owner="trigger", minimum=minimum
    )
    tags = catalog.usable_tag_names(ctx.tenant_id)
    if event["type"] == rules.TAG_ADDED and event["tag"] not in tags:
        raise ValidationFailed("event.tag", f"Tag {event['tag']} does not exist.")
    conditions = fields.get("conditions")
    if conditions is not None:
        conditions = check_criteria(conditions, criteria_vocabulary(ctx), path="conditions").criteria
    next_run_at = None
    if event["type"] == rules.SCHEDULE:
        next_run_at = to_rfc3339(parse_schedule(event["expression"]).next_after(clock()))
    return {
        "name": fields["name"].strip(),
        "enabled": fields.get("enabled", True),
        "event": event,
        "conditions": conditions,
        "actions": _checked_actions(ctx, fields["actions"], tags),
        "next_run_at": next_run_at,
    }


def create_trigger(ctx: TenantContext, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, CREATE_SCHEMA)
    now = to_rfc3339(clock())
    trigger = Trigger(id=new_id("trigger"), version=1, created_at=now, updated_at=now, **_checked(ctx, body, clock))
    store.create(ctx.tenant_id, trigger)
    return trigger_view(trigger)


def get_trigger(ctx: TenantContext, trigger_id: str) -> dict[str, Any]:
    return trigger_view(_require(ctx.tenant_id, trigger_id))


def list_triggers(ctx: TenantContext, limit_: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = ctx.tenant_id
    return page(f"triggers:{tenant_id}", cursor, lambda start: store.page(tenant_id, limit_, start), trigger_view)


def update_trigger(ctx: TenantContext, trigger_id: str, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, PATCH_SCHEMA)
    before = _require(ctx.tenant_id, trigger_id)
    current = {k: v for k, v in trigger_view(before).items() if k in _FIELDS}
    fields = _checked(ctx, {**current, **body}, clock)
    if before.status_reason and "enabled" not in body:
        fields["enabled"] = True  # it was disabled for want of a segment and has one again
    after = replace(before, **fields, status_reason=None, version=before.version + 1, updated_at=to_rfc3339(clock()))
    try:
        store.save(ctx.tenant_id, before, after)
    except StaleTrigger:
        raise changed_meanwhile(f"Trigger {trigger_id}") from None
    return trigger_view(after)


def delete_trigger(ctx: TenantContext, trigger_id: str, confirm: bool = False) -> None:
    trigger = _require(ctx.tenant_id, trigger_id)
    dependents.review("trigger", ctx, trigger.id, f"trigger {trigger.name!r}", confirm)
    try:
        store.delete(ctx.tenant_id, trigger)
    except StaleTrigger:
        raise changed_meanwhile(f"Trigger {trigger_id}") from None
    dependents.release("trigger", ctx, trigger.id, f"trigger {trigger.name!r} was deleted")


def runs(ctx: TenantContext, trigger_id: str, limit_: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = ctx.tenant_id
    trigger = _require(tenant_id, trigger_id)
    return page(
        f"trigger-runs:{tenant_id}:{trigger.id}",
        cursor,
        lambda start: store.runs_page(tenant_id, trigger.id, limit_, start),
        run_view,
    )


# --- firing on occurrences -----------------------------------------------------------------------------


def _events_run(trigger_id: str, now: datetime) -> Run:
    """Event-driven firings are counted in one run per trigger and UTC day (ids sort by time, as all runs')."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    run_id = stable_id("run", at_ms=int(day.timestamp() * 1000), seed=f"{trigger_id}|events")
    return Run(run_id, "events", to_rfc3339(day), None, None, 0)


def on_contact_change(ctx: TenantContext, message: dict[str, Any], clock: Clock = system_clock) -> int:
    """Fire the contact.created / tag.added / event.received triggers a contact change matches."""
    occurrences = []
    common = {"contact_id": message["contact_id"], "depth": int(message.get("depth", 0)), "version": message["version"]}
    if message["change"] == "created":
        occurrences.append(rules.Occurrence(rules.CONTACT_CREATED, **common))
    if message.get("tags_added"):
        occurrences.append(rules.Occurrence(rules.TAG_ADDED, tags_added=tuple(message["tags_added"]), **common))
    if message.get("events"):
        occurrences.append(rules.Occurrence(rules.EVENT_RECEIVED, events=tuple(message["events"]), **common))
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
    triggers = [t for t in store.all_triggers(ctx.tenant_id) if t.enabled and t.event["type"] in kinds]
    fired = 0
    for trigger in triggers:
        context = _TriggerContext(ctx, trigger)
        for occurrence in occurrences:
            for cause in rules.causes(trigger.event, occurrence):
                fired += _fire(context, occurrence, cause, clock)
    return fired


def _fire(context: _TriggerContext, occurrence: rules.Occurrence, cause: str, clock: Clock) -> int:
    tenant_id, trigger = context.tenant_id, context.trigger
    key = rules.firing_key(trigger.id, occurrence.contact_id, cause)
    if store.has_fired(tenant_id, occurrence.contact_id, key):
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
        contact, events = contact_store.read_contact(tenant_id, occurrence.contact_id)
        if contact is None:
            return 0
        filter_by_segments = trigger.event["type"] not in (rules.SEGMENT_ENTERED, rules.SEGMENT_EXITED)
        outcome = _apply(context, contact, events, key, occurrence.depth, now, filter_by_segments)
    counts = {"contacts": 1, outcome: 1}
    return int(store.record_firing(tenant_id, trigger.id, occurrence.contact_id, key, run, counts, to_rfc3339(now)))


class _TriggerContext:
    """One trigger of one tenant, with what checking and applying it needs from the tenant read (and its
    conditions compiled) once per occurrence or run batch, not once per contact."""

    def __init__(self, tenant: TenantContext, trigger: Trigger) -> None:
        self.tenant, self.tenant_id, self.trigger = tenant, tenant.tenant_id, trigger

    @cached_property
    def _conditions(self) -> CompiledCriteria | None:
        """None when a segment the conditions name is gone: then they cannot hold."""
        assert self.trigger.conditions is not None
        segments = {s.id: s for s in self.tenant.segments}
        try:
            return compile_criteria(
                self.trigger.conditions,
                self.tenant.attribute_types,
                lambda i: segments[i].criteria if i in segments else None,
            )
        except BrokenReference:
            return None

    def meets_conditions(self, contact: Contact, events: list[dict[str, Any]], now: datetime) -> bool:
        if self.trigger.conditions is None:
            return True
        compiled = self._conditions
        return compiled is not None and bool(compiled.evaluate(Population([contact], {contact.id: events}), now)[0])

    @cached_property
    def usable_tags(self) -> set[str]:
        return catalog.usable_tag_names(self.tenant_id)


def _apply(
    context: _TriggerContext,
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
    context: _TriggerContext,
    action: dict[str, Any],
    contact: Contact,
    key: str,
    depth: int,
    now: datetime,
    rewards: list[tuple[int, Reward]] | None,
) -> None:
    tenant_id, trigger, kind = context.tenant_id, context.trigger, action["type"]
    if kind in (rules.ADD_TAG, rules.REMOVE_TAG):
        _change_tag(context, contact, action["tag"], kind == rules.ADD_TAG, depth)
    elif kind == rules.REWARD:
        source = {"type": "trigger", "id": trigger.id, "name": trigger.name}
        line = engagements.reward_line(contact.id, action, f"trigger|{key}", source, to_rfc3339(now))
        if rewards is None:
            engagement_store.add_reward(tenant_id, contact.ordinal, line)
        else:
            rewards.append((contact.ordinal, line))
    elif kind == rules.ANNOUNCE:
        store.give_announcement(tenant_id, contact.id, action["announcement_id"], to_rfc3339(now))
    else:
        _send_email(tenant_id, trigger, action, contact, key)


def _change_tag(context: _TriggerContext, contact: Contact, tag: str, add: bool, depth: int) -> None:
    if tag not in context.usable_tags:
        raise ValueError(f"tag {tag} no longer exists")
    tenant_id = context.tenant_id

    def compute(before: Contact, now: str) -> Contact:
        tags = before.tags | {tag} if add else before.tags - {tag}
        if tags == before.tags:
            return before
        return replace(before, tags=frozenset(tags), version=before.version + 1, updated_at=now)

    rewrite_contact(
        tenant_id,
        lambda: contact_store.get_contact(tenant_id, contact.id),
        compute,
        "tags",
        source=f"trigger:{context.trigger.id}",
        depth=depth + 1,
    )


class SendLater(Exception):
    """SES or the tenant's send rate cannot take the email now: the queue message is retried later."""


def _send_email(tenant_id: str, trigger: Trigger, action: dict[str, Any], contact: Contact, key: str) -> None:
    """Like a campaign email: never to a suppressed address, in the tenant's send rate, claimed before SES,
    never sent twice; throttled or refused by the account, it is released and the message retried."""
    if not contact.email:
        return
    email = contact.email.lower()
    if campaign_store.get_suppression(tenant_id, email) is not None:
        return
    rate = int(cached_settings(tenant_id)["send_rate_per_second"])
    slot = campaign_store.reserve_send_slots(tenant_id, 1, rate, int(time.time() * 1000), sending.MAX_AHEAD_MS)
    if slot is None:
        raise SendLater("the tenant's send rate is taken for the next seconds")
    if not store.claim_mail(tenant_id, contact.id, key):
        return  # claimed by an earlier delivery: sent, or its outcome unknown; either way not again
    time.sleep(max(0.0, slot / 1000 - time.time()))
    url = sending.unsubscribe_url(tenant_id, None, email)
    try:
        rendered = render(
            Templates(action["subject"], action.get("html"), action.get("text")), contact_view(contact), url
        )
    except RenderFailed as problem:
        store.settle_mail(tenant_id, contact.id, key, "failed", None, f"render: {problem}")
        raise
    outcome = sending.send_one(
        tenant_id, action["from"], email, rendered, url, {"trigger_id": trigger.id, "contact_id": contact.id}
    )
    if outcome["status"] in (campaign_rules.THROTTLED, campaign_rules.QUOTA, campaign_rules.BLOCKED):
        store.release_mail(tenant_id, contact.id, key)
        raise SendLater(outcome.get("reason", outcome["status"]))
    state = {"sent": "sent", campaign_rules.UNCERTAIN: "unknown"}.get(outcome["status"], "failed")
    store.settle_mail(tenant_id, contact.id, key, state, outcome.get("message_id"), outcome.get("reason"))
    if state == "failed":
        raise RuntimeError(f"SES: {outcome.get('reason')}")


# --- scheduled and manual runs -------------------------------------------------------------------------


def _members(ctx: TenantContext, segment_ids: list[str]) -> list[int]:
    ordinals: set[int] = set()
    for segment_id in segment_ids:
        segment = ctx.ports.segments.get(segment_id)
        if segment is not None and segment.generation is not None:
            ordinals |= ctx.ports.segments.members(segment_id, segment.generation)
    return sorted(ordinals)


def _start_run(ctx: TenantContext, trigger: Trigger, kind: str, clock: Clock, run_id: str | None = None) -> Run:
    """Snapshot the members into batches, write the run, queue its batches. Given a ``run_id`` that exists
    already (a scheduled run started by a worker that stopped, or by another worker at the same minute),
    queue that run's batches again instead: a batch done before is skipped, so nothing runs twice."""
    tenant_id = ctx.tenant_id
    run_id = run_id or new_id("run")
    existing = store.get_run(tenant_id, trigger.id, run_id)
    if existing is None:
        ordinals = _members(ctx, trigger.event.get("segments") or [])
        batches = [
            [contact_id_for(o) for o in ordinals[start : start + RUN_BATCH_SIZE]]
            for start in range(0, len(ordinals), RUN_BATCH_SIZE)
        ]
        now = to_rfc3339(clock())
        run = Run(run_id, kind, now, None if batches else now, len(batches), 0)
        if not store.start_run(tenant_id, trigger.id, run, batches):
            return _start_run(ctx, trigger, kind, clock, run_id)  # another worker wrote it first
    else:
        run = existing
    total = run.batches_total or 0
    queues.send_messages(
        TRIGGER_RUNS_QUEUE,
        [TriggerRunBatch(tenant_id=tenant_id, trigger_id=trigger.id, run_id=run.id, batch=n) for n in range(total)],
    )
    logger.info(
        "trigger run started",
        extra={"tenant_id": tenant_id, "trigger_id": trigger.id, "run_id": run.id, "batches": total},
    )
    return run


def run_now(ctx: TenantContext, trigger_id: str, clock: Clock = system_clock) -> dict[str, Any]:
    trigger = _require(ctx.tenant_id, trigger_id)
    if trigger.event["type"] != rules.SCHEDULE:
        raise Conflict(
            f"Trigger {trigger_id} fires on {trigger.event['type']}; only schedule triggers run on demand.",
            {"field": "event.type"},
        )
    if not trigger.enabled:
        raise Conflict(f"Trigger {trigger_id} is disabled; enable it first.", {"field": "enabled"})
    return run_view(_start_run(ctx, trigger, "manual", clock))


def start_due(context_for: Callable[[str], TenantContext], clock: Clock = system_clock) -> int:
    """Start a run of every schedule trigger whose time has come (the minute schedule); each time once.
    ``context_for`` makes the context of each tenant concerned."""
    started = 0
    now = clock()
    for tenant_id, trigger_id in store.due_scheduled(to_rfc3339(now)):
        trigger = store.get(tenant_id, trigger_id)
        if trigger is None or not trigger.enabled or trigger.next_run_at is None:
            continue
        # the run of this scheduled time has an id of its own, so a worker that stopped before moving the
        # schedule on leaves a run the next minute finds (and queues again) rather than starts twice
        due_at = trigger.next_run_at
        due_ms = int(parse_rfc3339(due_at).timestamp() * 1000)
        _start_run(context_for(tenant_id), trigger, "schedule", clock, stable_id("run", at_ms=due_ms, seed=trigger.id))
        upcoming = parse_schedule(trigger.event["expression"]).next_after(max(now, parse_rfc3339(due_at)))
        started += store.advance_schedule(tenant_id, trigger, to_rfc3339(upcoming))
    return started


def run_batch(ctx: TenantContext, message: dict[str, Any], clock: Clock = system_clock) -> dict[str, int]:
    """Apply a run's trigger to one batch of its contacts; counted once, however often delivered."""
    tenant_id, trigger_id, run_id, number = (message[k] for k in ("tenant_id", "trigger_id", "run_id", "batch"))
    contact_ids, done = store.batch_contacts(tenant_id, trigger_id, run_id, number)
    trigger = store.get(tenant_id, trigger_id)
    if done:  # a redelivery: perhaps the earlier delivery stopped before stamping the run finished
        store.finish_run_if_complete(tenant_id, trigger_id, run_id, to_rfc3339(clock()))
        return {}
    counts = {"contacts": len(contact_ids)}
    if trigger is None:  # deleted while running
        counts["skipped"] = len(contact_ids)
    else:
        now = clock()
        context = _TriggerContext(ctx, trigger)
        contacts = contact_store.get_contacts(tenant_id, contact_ids)
        rewards: list[tuple[int, Reward]] = []
        for contact_id in contact_ids:
            contact = contacts.get(contact_id)
            if contact is None:
                outcome = "skipped"
            else:
                events = contact_store.read_contact(tenant_id, contact_id)[1] if trigger.conditions else []
                key = rules.firing_key(trigger.id, contact_id, f"run:{run_id}")
                outcome = _apply(context, contact, events, key, 0, now, False, rewards)
            counts[outcome] = counts.get(outcome, 0) + 1
        engagement_store.put_rewards(tenant_id, rewards)
    store.finish_batch(tenant_id, trigger_id, run_id, number, counts, to_rfc3339(clock()))
    store.finish_run_if_complete(tenant_id, trigger_id, run_id, to_rfc3339(clock()))
    return counts


def fail_batch(message: dict[str, Any], clock: Clock = system_clock) -> None:
    """A batch that failed every delivery (the DLQ): count its contacts as failures so the run finishes."""
    tenant_id, trigger_id, run_id, number = (message[k] for k in ("tenant_id", "trigger_id", "run_id", "batch"))
    contact_ids, _ = store.batch_contacts(tenant_id, trigger_id, run_id, number)
    counts = {"contacts": len(contact_ids), "failed": len(contact_ids)}
    store.finish_batch(tenant_id, trigger_id, run_id, number, counts, to_rfc3339(clock()))
    store.finish_run_if_complete(tenant_id, trigger_id, run_id, to_rfc3339(clock()))


# --- segments and tags they use ------------------------------------------------------------------------


def _summaries(found: list[Trigger]) -> list[dict[str, Any]]:
    return [{"type": "trigger", "id": t.id, "name": t.name, "enabled": t.enabled} for t in found]


def _released(trigger: Trigger, unusable: bool, why: str, **fields: Any) -> Trigger:
    """``trigger`` without a reference that went; disabled, saying ``why``, when it cannot work without it."""
    return replace(
        trigger,
        **fields,
        enabled=trigger.enabled and not unusable,
        status_reason=why if unusable else trigger.status_reason,
        version=trigger.version + 1,
    )


def _save_each(tenant_id: str, find: Callable[[], list[Trigger]], change: Callable[[Trigger], Trigger]) -> None:
    """Save ``change(trigger)`` for every trigger ``find`` returns; when one changed meanwhile, look again from
    the start."""
    while True:
        try:
            for trigger in find():
                store.save(tenant_id, trigger, change(trigger))
            return
        except StaleTrigger:
            continue


def _using_segment(tenant_id: str, segment_id: str) -> list[Trigger]:
    return [t for t in store.all_triggers(tenant_id) if segment_id in (t.event.get("segments") or [])]


def _segment_dependents(ctx: TenantContext, segment_id: str) -> list[dict[str, Any]]:
    return _summaries(_using_segment(ctx.tenant_id, segment_id))


def _release_segment(ctx: TenantContext, segment_id: str, reason: str) -> None:
    """Drop the deleted segment; a trigger left without the segments it needs is disabled and says why."""

    def change(trigger: Trigger) -> Trigger:
        left = [s for s in trigger.event["segments"] if s != segment_id]
        unusable = not left and trigger.event["type"] in rules.NEEDS_SEGMENTS
        why = f"{reason}; choose a segment to enable it again"
        return _released(trigger, unusable, why, event={**trigger.event, "segments": left})

    _save_each(ctx.tenant_id, lambda: _using_segment(ctx.tenant_id, segment_id), change)


def _using_tag(tenant_id: str, tag: str) -> list[Trigger]:
    return [
        t for t in store.all_triggers(tenant_id)
        if t.event.get("tag") == tag or any(a.get("tag") == tag for a in t.actions)
    ]  # fmt: skip


def _tag_dependents(ctx: TenantContext, tag: str) -> list[dict[str, Any]]:
    return _summaries(_using_tag(ctx.tenant_id, tag))


def _release_tag(ctx: TenantContext, tag: str, reason: str) -> None:
    """Drop the actions on the deleted tag; a tag.added trigger on it, or one left without actions, is disabled."""

    def change(trigger: Trigger) -> Trigger:
        actions = [a for a in trigger.actions if a.get("tag") != tag]
        unusable = trigger.event.get("tag") == tag or not actions
        why = f"{reason}; edit the trigger to enable it again"
        return _released(trigger, unusable, why, actions=actions or trigger.actions)

    _save_each(ctx.tenant_id, lambda: _using_tag(ctx.tenant_id, tag), change)


def _announcing(tenant_id: str, announcement_id: str) -> list[Trigger]:
    return [
        t for t in store.all_triggers(tenant_id)
        if any(a.get("announcement_id") == announcement_id for a in t.actions)
    ]  # fmt: skip


def _announcement_dependents(ctx: TenantContext, announcement_id: str) -> list[dict[str, Any]]:
    return _summaries(_announcing(ctx.tenant_id, announcement_id))


def _release_announcement(ctx: TenantContext, announcement_id: str, reason: str) -> None:
    """Drop the announce actions of the deleted announcement; a trigger left without actions is disabled."""

    def change(trigger: Trigger) -> Trigger:
        actions = [a for a in trigger.actions if a.get("announcement_id") != announcement_id]
        why = f"{reason}; edit the trigger to enable it again"
        return _released(trigger, not actions, why, actions=actions or trigger.actions)

    _save_each(ctx.tenant_id, lambda: _announcing(ctx.tenant_id, announcement_id), change)


DEPENDENTS: list[dependents.Registration] = [
    ("segment", _segment_dependents, _release_segment),
    ("tag", _tag_dependents, _release_tag),
    ("announcement", _announcement_dependents, _release_announcement),
]
"""What triggers depend on (registered by chalicelib/composition.py)."""
