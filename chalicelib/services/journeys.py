"""Journeys: declaring them (CRUD, versions, pause and resume), their statistics, where a contact is, and what
they depend on. Moving contacts through them is services/journey_flow.py; the rules are domain/journeys.py.

A journey is checked whole at every save: its graph (no cycle, every path ends, every reference exists),
each step (the actions as triggers check theirs, waits, branches' criteria), its entry and exit. An edit
that changes the definition makes a new version; contacts already inside finish on the version they
entered.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chalicelib.domain import journeys as rules
from chalicelib.domain import triggers as trigger_rules
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.contacts import ordinal_of
from chalicelib.domain.criteria import check_criteria, segments_named
from chalicelib.domain.errors import LimitExceeded, NotFound, ValidationFailed, changed_meanwhile
from chalicelib.domain.ids import new_id
from chalicelib.domain.journeys import DEFINITION, Journey, StaleJourney
from chalicelib.domain.schedules import parse_schedule
from chalicelib.domain.validation import validate
from chalicelib.services import dependents
from chalicelib.services.context import TenantContext
from chalicelib.services.paging import page
from chalicelib.services.segments import check_targets, criteria_vocabulary
from chalicelib.services.triggers import checked_action

_FIELDS: dict[str, Any] = {
    **rules.DEFINITION_FIELDS,
    "status": {"type": "string", "enum": [rules.RUNNING, rules.PAUSED]},
}
CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "entry", "start", "steps"],
    "properties": _FIELDS,
}
PATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        **{name: schema for name, schema in _FIELDS.items() if name != "status"},
        "move_contacts": {
            "type": "boolean",
            "description": "With a changed definition: contacts inside move onto the new version at their next "
            "step, when the step they are at is in it as the same kind of step (the others finish on theirs). "
            "Without it, everyone inside finishes on the version they entered.",
        },
    },
}
JOURNEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "status", "entry", "start", "steps", "version"],
    "properties": {
        **_FIELDS,
        "id": {"type": "string"},
        "version": {"type": "integer"},
        "status_reason": {"type": ["string", "null"]},
        "next_run_at": {"type": ["string", "null"], "description": "A schedule entry's next run"},
        "moved_to": {"type": ["integer", "null"], "description": "The version contacts inside were moved to"},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
    },
}
_counts = {"type": "object", "properties": {name: {"type": "integer"} for name in ("entered", "converted")}}
STATS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["entered", "converted", "holdout", "steps"],
    "properties": {
        "journey_id": {"type": "string"},
        "entered": {"type": "integer"},
        "converted": {"type": "integer"},
        "conversion_rate": {"type": ["number", "null"]},
        "holdout": _counts,
        "steps": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    name: {"type": "integer"} for name in ("entered", "completed", "waiting", "exited", "converted")
                },
            },
        },
    },
}
POSITION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["journey_id", "contact_id", "state", "step", "history"],
    "properties": {
        "journey_id": {"type": "string"},
        "contact_id": {"type": "string"},
        "state": {"type": "string", "enum": [rules.ACTIVE, rules.WAITING, *rules.FINISHED]},
        "step": {"type": ["string", "null"]},
        "version": {"type": "integer"},
        "entry": {"type": "integer"},
        "entered_at": {"type": "string"},
        "since": {"type": "string"},
        "due_at": {"type": ["string", "null"]},
        "waiting_for": {"type": ["string", "null"]},
        "converted_at": {"type": ["string", "null"]},
        "history": {"type": "array", "items": {"type": "object"}},
    },
}


def journey_view(journey: Journey) -> dict[str, Any]:
    return {
        "id": journey.id,
        "name": journey.name,
        "status": journey.status,
        "status_reason": journey.status_reason,
        **{name: getattr(journey, name) for name in DEFINITION},
        "next_run_at": journey.next_run_at,
        "moved_to": journey.moved_to,
        "version": journey.version,
        "created_at": journey.created_at,
        "updated_at": journey.updated_at,
    }


def require_journey(ctx: TenantContext, journey_id: str) -> Journey:
    journey = ctx.ports.journeys.get(journey_id)
    if journey is None:
        raise NotFound(f"Journey {journey_id} does not exist.", {"field": "id"})
    return journey


# --- declaring -----------------------------------------------------------------------------------------


def _checked_entry(ctx: TenantContext, raw: dict[str, Any], clock: Clock) -> dict[str, Any]:
    entry = dict(raw)
    try:
        trigger_rules.check_event_shape(entry, clock())
    except ValidationFailed as problem:
        problem.details["field"] = "entry." + str(problem.details.get("field", "")).removeprefix("event.")
        raise
    minimum = 1 if entry["type"] == trigger_rules.SEGMENT_ENTERED else 0
    entry["segments"] = check_targets(ctx, "entry.segments", entry.get("segments") or [], owner="journey",
                                      minimum=minimum)  # fmt: skip
    if entry["type"] == trigger_rules.TAG_ADDED and entry["tag"] not in ctx.usable_tags:
        raise ValidationFailed("entry.tag", f"Tag {entry['tag']} does not exist.")
    if entry.get("conditions") is not None:
        entry["conditions"] = check_criteria(
            entry["conditions"], criteria_vocabulary(ctx), path="entry.conditions"
        ).criteria
    return entry


def _checked_steps(ctx: TenantContext, start: str, steps: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    rules.check_graph(start, steps)
    if rules.email_steps(steps) > rules.MAX_EMAIL_STEPS:
        raise LimitExceeded("steps", f"A journey sends at most {rules.MAX_EMAIL_STEPS} emails.",
                            limit=rules.MAX_EMAIL_STEPS)  # fmt: skip
    tags, vocabulary = ctx.usable_tags, criteria_vocabulary(ctx)
    checked = {}
    for step_id, step in steps.items():
        rules.check_step(step_id, step)
        if step["type"] in rules.ACTION_STEPS:
            checked[step_id] = checked_action(ctx, step, f"steps.{step_id}", tags)
        elif step["type"] == rules.BRANCH:
            criteria = check_criteria(step["criteria"], vocabulary, path=f"steps.{step_id}.criteria").criteria
            checked[step_id] = {**step, "criteria": criteria}
        else:
            checked[step_id] = dict(step)
    return checked


def _checked(ctx: TenantContext, fields: dict[str, Any], clock: Clock) -> dict[str, Any]:
    exit_criteria = fields.get("exit")
    if exit_criteria is not None:
        exit_criteria = check_criteria(exit_criteria, criteria_vocabulary(ctx), path="exit").criteria
    goal = fields.get("goal")
    if goal is not None:
        rules.check_window(goal["within"], "goal.within")
    entry = fields["entry"]
    segments = (
        set(entry.get("segments") or []) | segments_named(entry.get("conditions")) | segments_named(exit_criteria)
    )
    for step in fields["steps"].values() if isinstance(fields.get("steps"), dict) else ():
        segments |= segments_named(step.get("criteria"))
    if len(segments) > ctx.limit("segments_per_journey"):
        most = ctx.limit("segments_per_journey")
        raise LimitExceeded("steps", f"A journey uses at most {most} segments (tenant limit).", limit=most)
    return {
        "name": fields["name"].strip(),
        "entry": _checked_entry(ctx, fields["entry"], clock),
        "reentry": rules.check_reentry(fields.get("reentry")),
        "exit": exit_criteria,
        "holdout_percent": fields.get("holdout_percent", 0),
        "goal": goal,
        "start": fields["start"],
        "steps": _checked_steps(ctx, fields["start"], fields["steps"]),
    }


def _next_run(entry: dict[str, Any], clock: Clock) -> str | None:
    """When a schedule entry runs next (None for other entries)."""
    if entry["type"] != trigger_rules.SCHEDULE:
        return None
    return to_rfc3339(parse_schedule(entry["expression"]).next_after(clock()))


def create_journey(ctx: TenantContext, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, CREATE_SCHEMA)
    now = to_rfc3339(clock())
    fields = _checked(ctx, body, clock)
    journey = Journey(
        id=new_id("journey"),
        status=body.get("status", rules.RUNNING),
        version=1,
        revision=1,
        created_at=now,
        updated_at=now,
        next_run_at=_next_run(fields["entry"], clock),
        **fields,
    )
    ctx.ports.journeys.create(journey)
    return journey_view(journey)


def get_journey(ctx: TenantContext, journey_id: str) -> dict[str, Any]:
    return journey_view(require_journey(ctx, journey_id))


def list_journeys(ctx: TenantContext, limit_: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = ctx.tenant_id
    return page(f"journeys:{tenant_id}", cursor, lambda start: ctx.ports.journeys.page(limit_, start), journey_view)


def update_journey(ctx: TenantContext, journey_id: str, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    """A new definition is a new version: contacts inside finish on theirs, or move onto it (``move_contacts``);
    a rename alone is not."""
    validate(body, PATCH_SCHEMA)
    before = require_journey(ctx, journey_id)
    move_contacts = body.pop("move_contacts", False)
    fields = _checked(ctx, {**journey_view(before), **body}, clock)
    changed = any(fields[name] != getattr(before, name) for name in DEFINITION)
    version = before.version + 1 if changed else before.version
    after = replace(
        before,
        **fields,
        next_run_at=_next_run(fields["entry"], clock) if fields["entry"] != before.entry else before.next_run_at,
        moved_to=version if changed and move_contacts else before.moved_to,
        version=version,
        revision=before.revision + 1,
        updated_at=to_rfc3339(clock()),
    )
    _save(ctx, before, after)
    return journey_view(after)


def set_status(ctx: TenantContext, journey_id: str, status: str, clock: Clock = system_clock) -> dict[str, Any]:
    """Pause (no one enters, no one moves; waits that end meanwhile are taken up on resume) or resume (checked
    again first: what it names must still exist)."""
    before = require_journey(ctx, journey_id)
    next_run_at = before.next_run_at
    if status == rules.RUNNING:
        _checked(ctx, journey_view(before), clock)
        next_run_at = _next_run(before.entry, clock)  # runs missed while paused are skipped
    after = replace(before, status=status, status_reason=None, revision=before.revision + 1,
                    updated_at=to_rfc3339(clock()), next_run_at=next_run_at)  # fmt: skip
    _save(ctx, before, after)
    return journey_view(after)


def _save(ctx: TenantContext, before: Journey, after: Journey) -> None:
    try:
        ctx.ports.journeys.save(before, after)
    except StaleJourney:
        raise changed_meanwhile(f"Journey {before.id}") from None


def delete_journey(ctx: TenantContext, journey_id: str) -> None:
    """The journey goes at once; contacts still inside are dropped as they are next woken."""
    journey = require_journey(ctx, journey_id)
    try:
        ctx.ports.journeys.delete(journey)
    except StaleJourney:
        raise changed_meanwhile(f"Journey {journey_id}") from None


# --- what it did ----------------------------------------------------------------------------------------


def _rate(converted: int, entered: int) -> float | None:
    return round(converted / entered, 4) if entered else None


def stats(ctx: TenantContext, journey_id: str) -> dict[str, Any]:
    """Per step: entered, completed, exited, and waiting (there now); for the journey: entered and converted,
    and the same for the holdout."""
    journey = require_journey(ctx, journey_id)
    totals, counted = ctx.ports.journeys.counters(journey.id)
    steps = {}
    for step_id in [*journey.steps, *(s for s in counted if s not in journey.steps)]:
        counts = counted.get(step_id, dict.fromkeys(rules.STEP_COUNTERS, 0))
        steps[step_id] = {**counts, "waiting": counts["entered"] - counts["completed"] - counts["exited"]}
    return {
        "journey_id": journey.id,
        "entered": totals["entered"],
        "converted": totals["converted"],
        "conversion_rate": _rate(totals["converted"], totals["entered"]),
        "holdout": {
            "entered": totals["holdout_entered"],
            "converted": totals["holdout_converted"],
            "conversion_rate": _rate(totals["holdout_converted"], totals["holdout_entered"]),
        },
        "steps": steps,
    }


def contact_position(ctx: TenantContext, journey_id: str, reference: str) -> dict[str, Any]:
    """Where a contact (its id, or its external id) is in the journey; a deleted contact's id still answers."""
    journey = require_journey(ctx, journey_id)
    contact_id = (
        reference if ordinal_of(reference) is not None else ctx.ports.contacts.find_contact_id(external_id=reference)
    )
    position = ctx.ports.journeys.position(journey.id, contact_id) if contact_id else None
    if position is None:
        raise NotFound(f"Contact {reference} has not entered journey {journey_id}.", {"field": "contact_id"})
    return {
        "journey_id": position.journey_id,
        "contact_id": position.contact_id,
        "state": position.state,
        "step": position.step,
        "version": position.version,
        "entry": position.entry,
        "entered_at": position.entered_at,
        "since": position.since,
        "due_at": position.due_at,
        "waiting_for": position.waiting_for,
        "converted_at": position.converted_at,
        "history": list(position.history),
    }


# --- segments, tags, announcements and webhooks they use ------------------------------------------------


def _names(journey: Journey, kind: str, key: str) -> bool:
    if kind == "segment":
        criteria = [journey.entry.get("conditions"), journey.exit, *(s.get("criteria") for s in journey.steps.values())]
        return key in (journey.entry.get("segments") or []) or any(key in segments_named(c) for c in criteria)
    field = {"tag": "tag", "announcement": "announcement_id", "webhook": "webhook_id"}[kind]
    return journey.entry.get(field) == key or any(step.get(field) == key for step in journey.steps.values())


def _registration(kind: str) -> dependents.Registration:
    """A journey naming a deleted segment, tag, announcement or webhook is paused, saying why."""

    def using(ctx: TenantContext, key: str) -> list[Journey]:
        return [j for j in ctx.ports.journeys.all_journeys() if _names(j, kind, key)]

    def finder(ctx: TenantContext, key: str) -> list[dict[str, Any]]:
        return [{"type": "journey", "id": j.id, "name": j.name, "enabled": j.status == rules.RUNNING}
                for j in using(ctx, key)]  # fmt: skip

    def release(ctx: TenantContext, key: str, reason: str) -> None:
        why = f"{reason}; edit the journey, then resume it"
        dependents.save_each(
            lambda: using(ctx, key),
            lambda j: replace(j, status=rules.PAUSED, status_reason=why, revision=j.revision + 1),
            ctx.ports.journeys.save,
            StaleJourney,
        )

    return kind, finder, release


DEPENDENTS: list[dependents.Registration] = [
    _registration(kind) for kind in ("segment", "tag", "announcement", "webhook")
]
"""What journeys depend on (registered by chalicelib/composition.py)."""
