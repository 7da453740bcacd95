"""Triggers: what may be declared, which occurrences fire which trigger, and the chain bound. No I/O.

An **occurrence** is something that happened to one contact, as the queues
report it: a membership event (``segment.entered`` / ``segment.exited``, with
its stable id) or a contact change (created, tags added, events received). A
trigger fires once per (trigger, contact, **cause**): the cause is the
occurrence's own identity (the membership event id, the received event's id,
the contact version that added the tag, or the scheduled run), so a redelivered
message finds the same cause and applies nothing again.

Each action a trigger applies can cause further occurrences (``add_tag`` makes
the contact enter a segment …). Every occurrence carries the **depth** of the
chain that led to it; a trigger does not fire at depth ``MAX_CHAIN_DEPTH``, and
the run counts it as stopped, so a trigger that re-triggers itself ends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from chalicelib.domain.engagements import REWARD_SCHEMA
from chalicelib.domain.errors import LimitExceeded, ValidationFailed
from chalicelib.domain.events import EVENT_TYPE_PATTERN
from chalicelib.domain.schedules import validate_schedule

SEGMENT_ENTERED, SEGMENT_EXITED = "segment.entered", "segment.exited"
CONTACT_CREATED, TAG_ADDED, EVENT_RECEIVED, SCHEDULE = "contact.created", "tag.added", "event.received", "schedule"
EVENT_TYPES = (SEGMENT_ENTERED, SEGMENT_EXITED, CONTACT_CREATED, TAG_ADDED, EVENT_RECEIVED, SCHEDULE)
NEEDS_SEGMENTS = {SEGMENT_ENTERED, SEGMENT_EXITED, SCHEDULE}
"""The others may name segments too: then they fire only for the segments' members."""
ADD_TAG, REMOVE_TAG, SEND_EMAIL, REWARD, ANNOUNCE = "add_tag", "remove_tag", "send_email", "reward", "announce"
WEBHOOK = "webhook"
ACTION_TYPES = (ADD_TAG, REMOVE_TAG, SEND_EMAIL, REWARD, ANNOUNCE, WEBHOOK)
MAX_ACTIONS = 10
MAX_CHAIN_DEPTH = 5
"""A chain of trigger → action → occurrence → trigger … stops after this many triggers."""

_segments = {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 50}
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "enum": list(EVENT_TYPES)},
        "segments": _segments,
        "tag": {"type": "string", "maxLength": 64},
        "event_type": {"type": "string", "pattern": EVENT_TYPE_PATTERN},
        "min_amount": {"type": "number"},
        "expression": {"type": "string", "maxLength": 200},
    },
}
ACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"type": "string", "enum": list(ACTION_TYPES)}},
    "allOf": [
        {
            "if": {"properties": {"type": {"enum": [ADD_TAG, REMOVE_TAG]}}},
            "then": {
                "additionalProperties": False,
                "required": ["tag"],
                "properties": {"type": {}, "tag": {"type": "string", "maxLength": 64}},
            },
        },
        {
            "if": {"properties": {"type": {"const": SEND_EMAIL}}},
            "then": {
                "additionalProperties": False,
                "required": ["subject"],
                "properties": {
                    "type": {},
                    "from": {"type": ["string", "null"], "maxLength": 254},
                    "subject": {"type": "string", "minLength": 1, "maxLength": 4_000},
                    "html": {"type": ["string", "null"]},
                    "text": {"type": ["string", "null"]},
                },
            },
        },
        {
            "if": {"properties": {"type": {"const": REWARD}}},
            "then": {
                "additionalProperties": False,
                "required": ["amount"],
                "properties": {"type": {}, **REWARD_SCHEMA["properties"]},
            },
        },
        {
            "if": {"properties": {"type": {"const": ANNOUNCE}}},
            "then": {
                "additionalProperties": False,
                "required": ["announcement_id"],
                "properties": {"type": {}, "announcement_id": {"type": "string", "maxLength": 64}},
            },
        },
        {
            "if": {"properties": {"type": {"const": WEBHOOK}}},
            "then": {
                "additionalProperties": False,
                "required": ["webhook_id"],
                "properties": {"type": {}, "webhook_id": {"type": "string", "maxLength": 64}},
            },
        },
    ],
}


def check_event_shape(event: dict[str, Any], now: datetime) -> None:
    """What each event type needs, beyond the schema; errors name ``event.<field>``."""
    kind = event["type"]
    wanted = {TAG_ADDED: "tag", EVENT_RECEIVED: "event_type", SCHEDULE: "expression"}.get(kind)
    if wanted and not event.get(wanted):
        raise ValidationFailed(f"event.{wanted}", f"A {kind} trigger needs event.{wanted}.")
    for name in ("tag", "event_type", "expression", "min_amount"):
        if name in event and name != wanted and not (name == "min_amount" and kind == EVENT_RECEIVED):
            raise ValidationFailed(f"event.{name}", f"event.{name} does not apply to {kind} triggers.")
    if kind in NEEDS_SEGMENTS and not event.get("segments"):
        raise ValidationFailed("event.segments", f"A {kind} trigger acts on the members of at least one segment.")
    if kind == SCHEDULE:
        validate_schedule(event["expression"], "event.expression", now)


def check_actions(actions: list[dict[str, Any]]) -> None:
    if not actions:
        raise ValidationFailed("actions", "A trigger needs at least one action.")
    if len(actions) > MAX_ACTIONS:
        raise LimitExceeded("actions", f"A trigger has at most {MAX_ACTIONS} actions.", limit=MAX_ACTIONS)
    tags = [(a["type"], a["tag"]) for a in actions if a["type"] in (ADD_TAG, REMOVE_TAG)]
    added = {tag for kind, tag in tags if kind == ADD_TAG}
    for index, action in enumerate(actions):
        if action["type"] == REMOVE_TAG and action["tag"] in added:
            raise ValidationFailed(f"actions[{index}].tag", f"The trigger both adds and removes {action['tag']}.")
    if sum(1 for a in actions if a["type"] == SEND_EMAIL) > 1:
        raise ValidationFailed("actions", "A trigger sends at most one email.")


# --- which occurrences fire a trigger -------------------------------------------------------------------


@dataclass(frozen=True)
class Occurrence:
    """Something that happened to one contact."""

    type: str
    contact_id: str
    depth: int
    segment_id: str | None = None
    event_id: str | None = None
    """The membership event's id (segment.*), or the run's id (schedule)."""
    version: int | None = None
    """The contact version the change made (contact.created, tag.added)."""
    tags_added: tuple[str, ...] = ()
    events: tuple[dict[str, Any], ...] = ()
    """Received events, as {"id", "type", "amount"}."""


def change_occurrences(message: Mapping[str, Any]) -> list[Occurrence]:
    """What a contact change message reports: contact.created, tag.added, event.received (each may be none)."""
    happened = Occurrence("", contact_id=message["contact_id"], depth=int(message.get("depth", 0)),
                          version=message["version"])  # fmt: skip
    occurrences = []
    if message["change"] == "created":
        occurrences.append(replace(happened, type=CONTACT_CREATED))
    if message.get("tags_added"):
        occurrences.append(replace(happened, type=TAG_ADDED, tags_added=tuple(message["tags_added"])))
    if message.get("events"):
        occurrences.append(replace(happened, type=EVENT_RECEIVED, events=tuple(message["events"])))
    return occurrences


def membership_occurrence(event: dict[str, Any]) -> Occurrence:
    """A segment.entered / segment.exited event as an occurrence."""
    depth = int((event.get("cause") or {}).get("depth", 0))
    return Occurrence(
        event["type"], contact_id=event["contact_id"], depth=depth, segment_id=event["segment_id"], event_id=event["id"]
    )


def causes(event: dict[str, Any], occurrence: Occurrence) -> list[str]:
    """The causes for which a trigger declared with ``event`` fires on ``occurrence`` (none: it does not).

    Membership in the trigger's segments (for the types that do not require it) and the
    conditions are checked by the caller, which reads the contact.
    """
    kind = event["type"]
    if kind != occurrence.type:
        return []
    if kind in (SEGMENT_ENTERED, SEGMENT_EXITED):
        return [f"{kind}:{occurrence.event_id}"] if occurrence.segment_id in event["segments"] else []
    if kind == CONTACT_CREATED:
        return ["created"]
    if kind == TAG_ADDED:
        return [f"tag:{event['tag']}:v{occurrence.version}"] if event["tag"] in occurrence.tags_added else []
    if kind == EVENT_RECEIVED:
        floor = event.get("min_amount")
        return [
            f"event:{e['id']}"
            for e in occurrence.events
            if e["type"] == event["event_type"] and (floor is None or (e.get("amount") or 0) >= floor)
        ]
    return [f"run:{occurrence.event_id}"]  # schedule: each run is one cause


def firing_key(trigger_id: str, contact_id: str, cause: str) -> str:
    digest = hashlib.sha256(f"{trigger_id}|{contact_id}|{cause}".encode()).hexdigest()[:32]
    return f"{trigger_id}#{contact_id}#{digest}"


def may_fire(depth: int) -> bool:
    return depth < MAX_CHAIN_DEPTH


RUN_COUNTERS = ("contacts", "applied", "skipped", "stopped", "failed")
"""contacts the run considered; firings applied; skipped (conditions not met, or already fired);
stopped by the chain bound; failed (an action could not be applied)."""


# --- the entities (storage/triggers.py maps them to items) --------------------


@dataclass(frozen=True)
class Trigger:
    id: str
    name: str
    enabled: bool
    event: dict[str, Any]
    conditions: dict[str, Any] | None
    actions: list[dict[str, Any]]
    version: int
    created_at: str
    updated_at: str
    next_run_at: str | None = None
    status_reason: str | None = None


class StaleTrigger(Exception):
    """It changed (or vanished) since it was read."""


@dataclass(frozen=True)
class Run:
    id: str
    kind: str
    started_at: str
    finished_at: str | None
    batches_total: int | None = None
    batches_done: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    note: str | None = None
