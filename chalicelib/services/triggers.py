"""Triggers: declaring them (CRUD, views, runs listed), and what they depend on. Firing on occurrences is
services/trigger_firing.py; scheduled and manual runs are services/trigger_runs.py.

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

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalicelib.domain import engagements as engagement_rules
from chalicelib.domain import triggers as rules
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.criteria import check_criteria, segments_named
from chalicelib.domain.errors import NotFound, ValidationFailed, changed_meanwhile
from chalicelib.domain.ids import new_id
from chalicelib.domain.schedules import parse_schedule
from chalicelib.domain.templates import check_templates
from chalicelib.domain.triggers import Run, StaleTrigger, Trigger
from chalicelib.domain.validation import validate
from chalicelib.services import dependents
from chalicelib.services.campaigns import check_sender, template_attributes
from chalicelib.services.context import TenantContext
from chalicelib.services.paging import page
from chalicelib.services.segments import check_targets, criteria_vocabulary

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
    counters = {name: run.counters.get(name, 0) for name in rules.RUN_COUNTERS}
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


def require_trigger(ctx: TenantContext, trigger_id: str) -> Trigger:
    trigger = ctx.ports.triggers.get(trigger_id)
    if trigger is None:
        raise NotFound(f"Trigger {trigger_id} does not exist.", {"field": "id"})
    return trigger


# --- declaring -----------------------------------------------------------------------------------------


def _checked_actions(ctx: TenantContext, actions: list[dict[str, Any]], tags: set[str]) -> list[dict[str, Any]]:
    rules.check_actions(actions)
    return [checked_action(ctx, action, f"actions[{index}]", tags) for index, action in enumerate(actions)]


def checked_action(ctx: TenantContext, action: dict[str, Any], field: str, tags: set[str]) -> dict[str, Any]:
    """One action (of a trigger, or a journey's step, whose other fields such as ``next`` are kept) with what
    it names checked; errors name ``field``."""
    kind = action["type"]
    if kind in (rules.ADD_TAG, rules.REMOVE_TAG):
        if action["tag"] not in tags:
            raise ValidationFailed(f"{field}.tag", f"Tag {action['tag']} does not exist.")
        return dict(action)
    if kind == rules.SEND_EMAIL:
        known = template_attributes(ctx)
        try:
            templates = check_templates(action["subject"], action.get("html"), action.get("text"), known)
        except ValidationFailed as problem:
            problem.details["field"] = f"{field}.{problem.details.get('field')}"
            raise
        try:
            sender = check_sender(ctx, action.get("from"))
        except ValidationFailed as problem:
            raise ValidationFailed(f"{field}.from", problem.message) from None
        extra = {k: v for k, v in action.items() if k not in ("type", "from", "subject", "html", "text")}
        return {"type": kind, "from": sender, "subject": templates.subject, "html": templates.html,
                "text": templates.text, **extra}  # fmt: skip
    if kind == rules.REWARD:
        extra = {k: v for k, v in action.items() if k not in engagement_rules.REWARD_SCHEMA["properties"]}
        return {**extra, **engagement_rules.check_reward(action, field)}
    if kind == rules.WEBHOOK:  # trigger.fired (journey.step) posted to this endpoint, whatever events it listens to
        if ctx.ports.webhooks.get(action["webhook_id"]) is None:
            raise ValidationFailed(f"{field}.webhook_id", f"Webhook {action['webhook_id']} does not exist.")
        return dict(action)
    if ctx.ports.engagements.get(engagement_rules.ANNOUNCEMENT, action["announcement_id"]) is None:  # announce
        raise ValidationFailed(f"{field}.announcement_id", f"Announcement {action['announcement_id']} does not exist.")
    return dict(action)


def _checked(ctx: TenantContext, fields: dict[str, Any], clock: Clock) -> dict[str, Any]:
    event = dict(fields["event"])
    rules.check_event_shape(event, clock())
    minimum = 1 if event["type"] in rules.NEEDS_SEGMENTS else 0
    event["segments"] = check_targets(
        ctx, "event.segments", event.get("segments") or [], owner="trigger", minimum=minimum
    )
    tags = ctx.usable_tags
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
    ctx.ports.triggers.create(trigger)
    return trigger_view(trigger)


def get_trigger(ctx: TenantContext, trigger_id: str) -> dict[str, Any]:
    return trigger_view(require_trigger(ctx, trigger_id))


def list_triggers(ctx: TenantContext, limit_: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = ctx.tenant_id
    return page(f"triggers:{tenant_id}", cursor, lambda start: ctx.ports.triggers.page(limit_, start), trigger_view)


def update_trigger(ctx: TenantContext, trigger_id: str, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, PATCH_SCHEMA)
    before = require_trigger(ctx, trigger_id)
    current = {k: v for k, v in trigger_view(before).items() if k in _FIELDS}
    fields = _checked(ctx, {**current, **body}, clock)
    if before.status_reason and "enabled" not in body:
        fields["enabled"] = True  # it was disabled for want of a segment and has one again
    after = replace(before, **fields, status_reason=None, version=before.version + 1, updated_at=to_rfc3339(clock()))
    try:
        ctx.ports.triggers.save(before, after)
    except StaleTrigger:
        raise changed_meanwhile(f"Trigger {trigger_id}") from None
    return trigger_view(after)


def delete_trigger(ctx: TenantContext, trigger_id: str, confirm: bool = False) -> None:
    trigger = require_trigger(ctx, trigger_id)
    dependents.review("trigger", ctx, trigger.id, f"trigger {trigger.name!r}", confirm)
    try:
        ctx.ports.triggers.delete(trigger)
    except StaleTrigger:
        raise changed_meanwhile(f"Trigger {trigger_id}") from None
    dependents.release("trigger", ctx, trigger.id, f"trigger {trigger.name!r} was deleted")


def runs(ctx: TenantContext, trigger_id: str, limit_: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = ctx.tenant_id
    trigger = require_trigger(ctx, trigger_id)
    return page(
        f"trigger-runs:{tenant_id}:{trigger.id}",
        cursor,
        lambda start: ctx.ports.triggers.runs_page(trigger.id, limit_, start),
        run_view,
    )


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


def _save_each(ctx: TenantContext, find: Callable[[], list[Trigger]], change: Callable[[Trigger], Trigger]) -> None:
    dependents.save_each(find, change, ctx.ports.triggers.save, StaleTrigger)


def _using_segment(ctx: TenantContext, segment_id: str) -> list[Trigger]:
    """Triggers that filter by the segment or whose conditions include it."""
    return [
        t for t in ctx.ports.triggers.all_triggers()
        if segment_id in (t.event.get("segments") or []) or segment_id in segments_named(t.conditions)
    ]  # fmt: skip


def _segment_dependents(ctx: TenantContext, segment_id: str) -> list[dict[str, Any]]:
    return _summaries(_using_segment(ctx, segment_id))


def _release_segment(ctx: TenantContext, segment_id: str, reason: str) -> None:
    """Drop the deleted segment from the ones a trigger filters by; a trigger left without the segments it needs
    is disabled and says why, and so is one whose conditions include it (they could no longer hold, and
    dropping a part of them would change what they mean)."""

    def change(trigger: Trigger) -> Trigger:
        left = [s for s in trigger.event["segments"] if s != segment_id]
        in_conditions = segment_id in segments_named(trigger.conditions)
        unusable = in_conditions or (not left and trigger.event["type"] in rules.NEEDS_SEGMENTS)
        why = f"{reason}; {'edit its conditions' if in_conditions else 'choose a segment'} to enable it again"
        return _released(trigger, unusable, why, event={**trigger.event, "segments": left})

    _save_each(ctx, lambda: _using_segment(ctx, segment_id), change)


def _using_tag(ctx: TenantContext, tag: str) -> list[Trigger]:
    return [
        t for t in ctx.ports.triggers.all_triggers()
        if t.event.get("tag") == tag or any(a.get("tag") == tag for a in t.actions)
    ]  # fmt: skip


def _tag_dependents(ctx: TenantContext, tag: str) -> list[dict[str, Any]]:
    return _summaries(_using_tag(ctx, tag))


def _release_tag(ctx: TenantContext, tag: str, reason: str) -> None:
    """Drop the actions on the deleted tag; a tag.added trigger on it, or one left without actions, is disabled."""

    def change(trigger: Trigger) -> Trigger:
        actions = [a for a in trigger.actions if a.get("tag") != tag]
        unusable = trigger.event.get("tag") == tag or not actions
        why = f"{reason}; edit the trigger to enable it again"
        return _released(trigger, unusable, why, actions=actions or trigger.actions)

    _save_each(ctx, lambda: _using_tag(ctx, tag), change)


def _acting_on(ctx: TenantContext, field: str, key: str) -> list[Trigger]:
    """Triggers with an action naming ``key`` in ``field`` (an announcement's or a webhook's id)."""
    return [t for t in ctx.ports.triggers.all_triggers() if any(a.get(field) == key for a in t.actions)]


def _action_target(field: str) -> tuple[dependents.Finder, dependents.Release]:
    """The finder and release of what an action names by ``field``: its triggers lose the action when it is
    deleted; a trigger left without actions is disabled."""

    def finder(ctx: TenantContext, key: str) -> list[dict[str, Any]]:
        return _summaries(_acting_on(ctx, field, key))

    def release(ctx: TenantContext, key: str, reason: str) -> None:
        def change(trigger: Trigger) -> Trigger:
            actions = [a for a in trigger.actions if a.get(field) != key]
            why = f"{reason}; edit the trigger to enable it again"
            return _released(trigger, not actions, why, actions=actions or trigger.actions)

        _save_each(ctx, lambda: _acting_on(ctx, field, key), change)

    return finder, release


DEPENDENTS: list[dependents.Registration] = [
    ("segment", _segment_dependents, _release_segment),
    ("tag", _tag_dependents, _release_tag),
    ("announcement", *_action_target("announcement_id")),
    ("webhook", *_action_target("webhook_id")),
]
"""What triggers depend on (registered by chalicelib/composition.py)."""
