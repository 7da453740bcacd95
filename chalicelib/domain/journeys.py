"""Journeys: multi-step automation over one contact at a time. What may be declared, the graph rules, and how a
contact's position moves. No I/O.

A journey has an **entry** (the trigger occurrences: segment.entered, contact.created, tag.added,
event.received), **re-entry** rules, **exit** criteria checked before every step, a **holdout** share kept
out for measurement, a **goal** event, and a graph of **steps** from ``start``: actions (the triggers'
six), ``wait`` (a duration, or until a time of day in the tenant's or the contact's zone),
``wait_for_event`` (with a timeout and a path for each outcome), ``branch`` (criteria on the contact at
that moment) and ``split`` (random, deterministic per contact and journey).

A contact's **position** is one record with a revision. Every move (a step done, a wait over, an exit)
writes the next revision conditioned on the one read, so of two workers woken for the same contact
only one moves it; each action is keyed by (journey, contact, entry, step), so an action redone
after a crash is the same action (a claimed email, a reward with the same id, a tag already there).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any

from chalicelib.domain import triggers as trigger_rules
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.durations import parse_duration
from chalicelib.domain.errors import LimitExceeded, ValidationFailed
from chalicelib.domain.events import EVENT_TYPE_PATTERN
from chalicelib.domain.time_zones import zone

ENTRY_TYPES = (
    trigger_rules.SEGMENT_ENTERED,
    trigger_rules.CONTACT_CREATED,
    trigger_rules.TAG_ADDED,
    trigger_rules.EVENT_RECEIVED,
    trigger_rules.SCHEDULE,
)
WAIT, WAIT_FOR_EVENT, BRANCH, SPLIT = "wait", "wait_for_event", "branch", "split"
ACTION_STEPS = trigger_rules.ACTION_TYPES
STEP_TYPES = (*ACTION_STEPS, WAIT, WAIT_FOR_EVENT, BRANCH, SPLIT)
MAX_STEPS = 100
MAX_EMAIL_STEPS = 20
SHORTEST_WAIT, LONGEST_WAIT = timedelta(minutes=1), timedelta(days=90)
LONGEST_GOAL_WINDOW = timedelta(days=365)
MAX_HISTORY = 50
"""A position keeps the last moves (GET /journeys/{id}/contacts/{contact} shows them)."""

RUNNING, PAUSED = "running", "paused"
ACTIVE, WAITING, DONE, EXITED, HOLDOUT = "active", "waiting", "done", "exited", "holdout"
FINISHED = (DONE, EXITED, HOLDOUT)

DEFINITION = ("entry", "reentry", "exit", "holdout_percent", "goal", "start", "steps")
"""The fields of a journey a version fixes (with its name)."""
STEP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.?!-]{0,63}$"
_next = {"type": ["string", "null"], "maxLength": 64}
_duration = {"type": "string", "maxLength": 40, "description": "ISO 8601 duration"}


def _action_step(action_type: str) -> dict[str, Any]:
    """The trigger action's own schema, with ``next``."""
    for rule in trigger_rules.ACTION_SCHEMA["allOf"]:
        kinds = rule["if"]["properties"]["type"]
        if action_type in kinds.get("enum", [kinds.get("const")]):
            then = rule["then"]
            properties = {**then["properties"], "next": _next}
            return {**then, "required": [*then["required"], "next"], "properties": properties}
    raise KeyError(action_type)


_STEP_SHAPES: dict[str, dict[str, Any]] = {
    **{kind: _action_step(kind) for kind in ACTION_STEPS},
    WAIT: {
        "additionalProperties": False,
        "required": ["next"],
        "properties": {
            "type": {},
            "duration": _duration,
            "until": {"type": "string", "maxLength": 5},
            "time_zone": {"type": "string", "enum": ["tenant", "contact"]},
            "next": _next,
        },
    },
    WAIT_FOR_EVENT: {
        "additionalProperties": False,
        "required": ["event", "timeout", "then", "timed_out"],
        "properties": {
            "type": {},
            "event": {"type": "string", "pattern": EVENT_TYPE_PATTERN},
            "timeout": _duration,
            "then": _next,
            "timed_out": _next,
        },
    },
    BRANCH: {
        "additionalProperties": False,
        "required": ["criteria", "then", "else"],
        "properties": {"type": {}, "criteria": {"type": "object"}, "then": _next, "else": _next},
    },
    SPLIT: {
        "additionalProperties": False,
        "required": ["branches"],
        "properties": {
            "type": {},
            "branches": {
                "type": "array",
                "minItems": 2,
                "maxItems": 10,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["percent", "next"],
                    "properties": {"percent": {"type": "integer", "minimum": 1, "maximum": 99}, "next": _next},
                },
            },
        },
    },
}
STEP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"type": "string", "enum": list(STEP_TYPES)}},
    "allOf": [{"if": {"properties": {"type": {"const": kind}}}, "then": shape} for kind, shape in _STEP_SHAPES.items()],
}
ENTRY_SCHEMA: dict[str, Any] = {
    **trigger_rules.EVENT_SCHEMA,
    "properties": {
        **trigger_rules.EVENT_SCHEMA["properties"],
        "type": {"type": "string", "enum": list(ENTRY_TYPES)},
        "conditions": {"type": "object", "description": "Criteria the contact must meet when it would enter"},
    },
}
REENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["mode"],
    "properties": {"mode": {"type": "string", "enum": ["never", "after", "always"]}, "after": _duration},
}
GOAL_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "required": ["event", "within"],
    "properties": {"event": {"type": "string", "pattern": EVENT_TYPE_PATTERN}, "within": _duration},
}
DEFINITION_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "entry": ENTRY_SCHEMA,
    "reentry": REENTRY_SCHEMA,
    "exit": {"type": ["object", "null"]},
    "holdout_percent": {"type": "integer", "minimum": 0, "maximum": 50},
    "goal": GOAL_SCHEMA,
    "start": {"type": "string", "maxLength": 64},
    "steps": {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"pattern": STEP_ID_PATTERN},
        "additionalProperties": STEP_SCHEMA,
    },
}


# --- the graph ------------------------------------------------------------------------------------------


def successors(step: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(field, next step id or None for "the journey ends here") of every way out of ``step``."""
    kind = step["type"]
    if kind == WAIT_FOR_EVENT:
        return [("then", step["then"]), ("timed_out", step["timed_out"])]
    if kind == BRANCH:
        return [("then", step["then"]), ("else", step["else"])]
    if kind == SPLIT:
        return [(f"branches[{i}].next", branch["next"]) for i, branch in enumerate(step["branches"])]
    return [("next", step["next"])]


def check_graph(start: str, steps: dict[str, dict[str, Any]]) -> None:
    """Every reference exists, every step is reachable from ``start``, and no path comes back to a step it
    passed: so every path ends. Errors name the field (``steps.<id>.<field>``)."""
    if len(steps) > MAX_STEPS:
        raise LimitExceeded("steps", f"A journey has at most {MAX_STEPS} steps.", limit=MAX_STEPS)
    if start not in steps:
        raise ValidationFailed("start", f"start names step {start!r}, which the journey does not have.")
    for step_id, step in steps.items():
        for name, target in successors(step):
            if target is not None and target not in steps:
                raise ValidationFailed(f"steps.{step_id}.{name}", f"Step {target!r} does not exist.")
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    stack: list[tuple[str, list[tuple[str, str | None]]]] = [(start, successors(steps[start]))]
    path = [start]
    state[start] = "open"
    while stack:
        step_id, ways = stack[-1]
        if not ways:
            state[step_id] = "done"
            stack.pop()
            path.pop()
            continue
        name, target = ways.pop(0)
        if target is None or state.get(target) == "done":
            continue
        if state.get(target) == "open":
            loop = " → ".join([*path[path.index(target) :], target])
            raise ValidationFailed(f"steps.{step_id}.{name}", f"The steps make a cycle ({loop}): every path must end.")
        state[target] = "open"
        path.append(target)
        stack.append((target, successors(steps[target])))
    for step_id in steps:
        if step_id not in state:
            raise ValidationFailed(f"steps.{step_id}", f"Step {step_id!r} cannot be reached from start.")


def check_step(step_id: str, step: dict[str, Any]) -> None:
    """Rules of one step beyond its schema (durations, times of day, percentages)."""
    path = f"steps.{step_id}"
    kind = step["type"]
    if kind == WAIT:
        if ("duration" in step) == ("until" in step):
            raise ValidationFailed(path, f"{path} waits either a duration or until a time of day.")
        if "duration" in step:
            check_wait(step["duration"], f"{path}.duration")
            if "time_zone" in step:
                raise ValidationFailed(f"{path}.time_zone", "time_zone applies to waits until a time of day.")
        else:
            time_of_day(step["until"], f"{path}.until")
    elif kind == WAIT_FOR_EVENT:
        check_wait(step["timeout"], f"{path}.timeout")
    elif kind == SPLIT and sum(branch["percent"] for branch in step["branches"]) != 100:
        raise ValidationFailed(f"{path}.branches", f"{path}.branches: the percentages add up to 100.")


def check_wait(value: Any, field: str) -> timedelta:
    wait = parse_duration(value, field)
    if not SHORTEST_WAIT <= wait <= LONGEST_WAIT:
        raise ValidationFailed(field, f"{field} is between PT1M and P90D.")
    return wait


def check_window(value: Any, field: str, longest: timedelta = LONGEST_GOAL_WINDOW) -> timedelta:
    window = parse_duration(value, field)
    if not SHORTEST_WAIT <= window <= longest:
        raise ValidationFailed(field, f"{field} is between PT1M and P{longest.days}D.")
    return window


LONGEST_REENTRY_WAIT = timedelta(days=3650)


def check_reentry(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The re-entry rule (``never`` when none): ``after`` takes a wait of PT1M to ten years, only with mode
    "after"."""
    reentry = dict(raw or {"mode": "never"})
    if reentry["mode"] == "after":
        if "after" not in reentry:
            raise ValidationFailed("reentry.after", 'reentry.after is the wait before entering again, e.g. "P30D".')
        check_window(reentry["after"], "reentry.after", LONGEST_REENTRY_WAIT)
    elif "after" in reentry:
        raise ValidationFailed("reentry.after", 'reentry.after applies to mode "after".')
    return reentry


def time_of_day(value: Any, field: str) -> time:
    """``HH:MM`` (24-hour) as a time."""
    try:
        hours, minutes = value.split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError(value)
        return time(int(hours), int(minutes))
    except (ValueError, AttributeError):
        raise ValidationFailed(field, f'{field} is a time of day, "HH:MM" from "00:00" to "23:59".') from None


def email_steps(steps: dict[str, dict[str, Any]]) -> int:
    return sum(1 for step in steps.values() if step["type"] == trigger_rules.SEND_EMAIL)


# --- deterministic choices ------------------------------------------------------------------------------


def _share(*parts: str) -> float:
    """A stable number in [0, 100) for the parts."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def in_holdout(journey_id: str, contact_id: str, percent: int) -> bool:
    """The contact is kept out of the journey (the same answer every time it is asked)."""
    return percent > 0 and _share(journey_id, contact_id, "holdout") < percent


def split_choice(journey_id: str, step_id: str, contact_id: str, branches: list[dict[str, Any]]) -> str | None:
    """The branch a contact takes at a split: deterministic per (journey, step, contact)."""
    point, total = _share(journey_id, step_id, contact_id), 0
    for branch in branches:
        total += branch["percent"]
        if point < total:
            break
    chosen: str | None = branch["next"]
    return chosen


def wait_due(step: dict[str, Any], now: datetime, tenant_zone: str | None, contact_zone: str | None) -> datetime:
    """When a ``wait`` (or the timeout of a ``wait_for_event``) that starts ``now`` is over."""
    if step["type"] == WAIT_FOR_EVENT:
        return now + parse_duration(step["timeout"], "timeout")
    if "duration" in step:
        return now + parse_duration(step["duration"], "duration")
    name = contact_zone if step.get("time_zone") == "contact" and contact_zone else tenant_zone
    local_now = now.astimezone(zone(name))
    target = datetime.combine(local_now.date(), time_of_day(step["until"], "until"), tzinfo=local_now.tzinfo)
    if target <= local_now:
        target = datetime.combine(local_now.date() + timedelta(days=1), target.timetz())
    return target.astimezone(now.tzinfo)


# --- the entities --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Journey:
    id: str
    name: str
    status: str
    entry: dict[str, Any]
    reentry: dict[str, Any]
    exit: dict[str, Any] | None
    holdout_percent: int
    goal: dict[str, Any] | None
    start: str
    steps: dict[str, dict[str, Any]]
    version: int
    """The definition's version: a contact finishes on the version it entered."""
    revision: int
    """Every save (a pause too) moves it: saves are conditioned on it."""
    created_at: str
    updated_at: str
    status_reason: str | None = None
    next_run_at: str | None = None
    """A schedule entry's next run (None for other entries): its segments' members enter then."""
    moved_to: int | None = None
    """The version contacts inside on an older one were moved to (an edit that asked for it), if any."""


def adopted(position: Position, step_type_then: str | None, step_type_now: str | None, moved_to: int | None) -> bool:
    """Whether a contact inside moves onto the version contacts were moved to: it is on an older version and the
    step it is at exists there as the same kind of step (else it finishes on its own version)."""
    return (
        moved_to is not None
        and position.version < moved_to
        and not position.finished
        and step_type_then is not None
        and step_type_then == step_type_now
    )


class StaleJourney(Exception):
    """It changed (or vanished) since it was read."""


@dataclass(frozen=True)
class Position:
    """Where one contact is in one journey."""

    journey_id: str
    contact_id: str
    version: int
    entry: int
    """How many times the contact entered (1 the first time)."""
    state: str
    step: str | None
    since: str
    entered_at: str
    cause: str
    """What made it enter: a redelivered entry finds the same cause and enters nothing."""
    revision: int = 1
    due_at: str | None = None
    waiting_for: str | None = None
    converted_at: str | None = None
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def holdout(self) -> bool:
        return self.state == HOLDOUT

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def action_key(self) -> str:
        """What names the action of the current step: the same for every attempt at it (a path passes a step at
        most once per entry, the graph having no cycle)."""
        return f"{self.journey_id}|{self.contact_id}|{self.entry}|{self.step}"


def may_enter(journey: Journey, previous: Position | None, cause: str, now: datetime) -> bool:
    """Re-entry rules: never while inside; ``never`` once entered; ``after`` a wait since the last entry."""
    if previous is None:
        return True
    if previous.cause == cause or not previous.finished:
        return False
    mode = journey.reentry.get("mode", "never")
    if mode == "always":
        return True
    if mode == "after":
        return parse_rfc3339(previous.entered_at) + parse_duration(journey.reentry["after"], "after") <= now
    return False


def entered(journey: Journey, contact_id: str, previous: Position | None, cause: str, now: datetime) -> Position:
    """The position of a contact entering now: in the holdout (finished at once) or at the start step."""
    at = to_rfc3339(now)
    holdout = in_holdout(journey.id, contact_id, journey.holdout_percent)
    return Position(
        journey_id=journey.id,
        contact_id=contact_id,
        version=journey.version,
        entry=(previous.entry if previous else 0) + 1,
        state=HOLDOUT if holdout else ACTIVE,
        step=None if holdout else journey.start,
        since=at,
        entered_at=at,
        cause=cause,
        revision=(previous.revision if previous else 0) + 1,
        history=({"step": None, "outcome": "holdout" if holdout else "entered", "at": at},),
    )


def moved(
    position: Position,
    to: str | None,
    now: datetime,
    outcome: str,
    *,
    state: str | None = None,
    due_at: datetime | None = None,
    waiting_for: str | None = None,
) -> Position:
    """``position`` one move on: the step it leaves with ``outcome``, the step it reaches (None: done)."""
    at = to_rfc3339(now)
    record = {"step": position.step, "outcome": outcome, "at": at}
    return replace(
        position,
        step=to,
        state=state or (ACTIVE if to is not None else DONE),
        since=at,
        revision=position.revision + 1,
        due_at=to_rfc3339(due_at) if due_at else None,
        waiting_for=waiting_for,
        history=(*position.history, record)[-MAX_HISTORY:],
    )


def step_counts(before: Position | None, after: Position) -> dict[tuple[str, str], int]:
    """What a move adds to the per-step counters: (step, counter) → 1. A step left by a move is completed
    (or exited, when the move is an exit); a step reached is entered; a conversion counts at the step the
    contact was at (the last one it went through, once it is done)."""
    counts: dict[tuple[str, str], int] = {}
    if _newly_converted(before, after) and not after.holdout:
        at = after.step or next((r["step"] for r in reversed(after.history) if r.get("step")), None)
        if at is not None:
            counts[(at, "converted")] = 1
    inside = before is not None and before.step is not None and not before.finished
    if inside and before is not None and before.step is not None and (after.step != before.step or after.finished):
        counts[(before.step, "exited" if after.state == EXITED else "completed")] = 1
    if after.step is not None and not after.finished and (not inside or before is None or before.step != after.step):
        counts[(after.step, "entered")] = 1
    return counts


def journey_counts(before: Position | None, after: Position) -> dict[str, int]:
    """What a move adds to the journey's own counters (entered / converted, treated and holdout apart)."""
    group = "holdout_" if after.holdout else ""
    counts: dict[str, int] = {}
    if before is None or after.entry != before.entry:
        counts[f"{group}entered"] = 1
    if _newly_converted(before, after):
        counts[f"{group}converted"] = 1
    return counts


def _newly_converted(before: Position | None, after: Position) -> bool:
    return bool(after.converted_at) and not (before and before.converted_at and before.entry == after.entry)


def listens_to(journey: Journey, event_types: set[Any]) -> bool:
    """Whether events of these types can matter to someone inside: its goal, or a wait for one of them. An
    edited journey always listens (a contact on an older version may wait for another type)."""
    if journey.version > 1:
        return True
    wanted = {step.get("event") for step in journey.steps.values() if step["type"] == WAIT_FOR_EVENT}
    if journey.goal:
        wanted.add(journey.goal["event"])
    return bool(wanted & event_types)


EVENT_CLOCK_SLACK = timedelta(minutes=5)
"""How long before a moment an event recorded after it may say it happened and still count as after it:
clients stamp events to the second, from their own clocks."""


def came_after(moment: str, event: dict[str, Any], recorded_at: str | None) -> bool:
    """The event came after ``moment`` (a wait began, a contact entered): recorded after it, when that is
    known, and happened no earlier than EVENT_CLOCK_SLACK before it — so a backfill of history never counts,
    nor the event whose arrival was the moment (an entry on that very purchase)."""
    start = parse_rfc3339(moment)
    if recorded_at is not None and parse_rfc3339(recorded_at) < start:
        return False
    if not event.get("at"):
        return True
    return parse_rfc3339(event["at"]) >= start - (EVENT_CLOCK_SLACK if recorded_at is not None else timedelta(0))


def converts(journey: Journey, position: Position, event: dict[str, Any], recorded_at: str | None = None) -> bool:
    """The goal event counts for this entry: of the goal's type, after entering and within the window, not
    yet converted."""
    goal = journey.goal
    if not goal or position.converted_at or event.get("type") != goal["event"]:
        return False
    if not came_after(position.entered_at, event, recorded_at):
        return False
    happened = parse_rfc3339(event["at"]) if event.get("at") else parse_rfc3339(position.entered_at)
    return happened <= parse_rfc3339(position.entered_at) + parse_duration(goal["within"], "goal.within")


STEP_COUNTERS = ("entered", "completed", "exited", "converted")
JOURNEY_COUNTERS = ("entered", "converted", "holdout_entered", "holdout_converted")
