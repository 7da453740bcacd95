"""Announcements, challenges and rewards: pure rules, no I/O.

An **announcement** is a message shown in the contact portal to the members of
its segments while its window is open. A **challenge** is a goal a member works
towards inside its window ("3 purchases before the end of the month"); its
progress is computed from the contact's events in the window. A **reward** is a
line in a contact's ledger, written once per cause (a challenge completed, a
trigger run): its id is derived from that cause, so writing it again is a no-op.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.domain.clock import moment_field, stored_moment, to_rfc3339
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.events import EVENT_TYPE_PATTERN

ANNOUNCEMENT, CHALLENGE = "announcement", "challenge"
ENABLED, DISABLED = "enabled", "disabled"
MAX_TITLE = 200
MAX_BODY = 10_000
MAX_NOTE = 500
MAX_REWARD_AMOUNT = 1_000_000
CURRENCY_PATTERN = r"^[A-Z]{3}$|^points$"

REWARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["amount"],
    "properties": {
        "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_REWARD_AMOUNT},
        "currency": {"type": "string", "pattern": CURRENCY_PATTERN, "default": "points"},
        "note": {"type": ["string", "null"], "maxLength": MAX_NOTE},
    },
}
GOAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["event_type"],
    "minProperties": 2,
    "maxProperties": 2,
    "properties": {
        "event_type": {"type": "string", "pattern": EVENT_TYPE_PATTERN},
        "count": {"type": "integer", "minimum": 1, "maximum": 100_000},
        "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_REWARD_AMOUNT},
    },
    "description": "Reach `count` events of `event_type`, or a total `amount` over them, inside the window.",
}


@dataclass(frozen=True)
class Window:
    starts_at: str
    ends_at: str

    def is_open(self, now: datetime) -> bool:
        """Inside the window; a window that cannot be read (see :meth:`problems`) is never open."""
        starts, ends = stored_moment(self.starts_at), stored_moment(self.ends_at)
        return starts is not None and ends is not None and starts <= now < ends

    def problems(self) -> list[dict[str, str]]:
        """Stored times that cannot be read (written before the date-time rules): named, so the record can
        still be shown, fixed or deleted."""
        return [
            {"field": name, "message": f"the stored {name} {value!r} is not a valid date-time; set it again"}
            for name, value in (("starts_at", self.starts_at), ("ends_at", self.ends_at))
            if stored_moment(value) is None
        ]


def check_window(starts_at: Any, ends_at: Any) -> Window:
    """Both RFC 3339 times, the end after the start (a window may already be over: it is then just inactive)."""
    moments = {name: moment_field(value, name) for name, value in (("starts_at", starts_at), ("ends_at", ends_at))}
    if moments["ends_at"] <= moments["starts_at"]:
        raise ValidationFailed("ends_at", "ends_at must come after starts_at.")
    return Window(to_rfc3339(moments["starts_at"]), to_rfc3339(moments["ends_at"]))


def check_reward(raw: dict[str, Any], field: str) -> dict[str, Any]:
    """A schema-valid reward, normalised (currency defaults to points, note stripped)."""
    amount = raw["amount"]
    if isinstance(amount, float) and round(amount, 2) != amount:
        raise ValidationFailed(f"{field}.amount", "A reward amount has at most two decimals.")
    currency = raw.get("currency") or "points"
    if not re.fullmatch(CURRENCY_PATTERN, currency):
        raise ValidationFailed(f"{field}.currency", "currency is an ISO 4217 code such as USD, or points.")
    note = (raw.get("note") or "").strip() or None
    return {"amount": amount, "currency": currency, "note": note}


def reward_id(cause: str) -> str:
    """One ledger line per cause, however often the cause is processed."""
    return "rwd_" + hashlib.sha256(cause.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Progress:
    done: float
    target: float

    @property
    def complete(self) -> bool:
        return self.done >= self.target

    def view(self) -> dict[str, Any]:
        return {"done": self.done, "target": self.target, "complete": self.complete}


def progress(goal: dict[str, Any], window: Window, events: list[dict[str, Any]]) -> Progress:
    """How far a contact is towards ``goal`` with the events it has inside ``window``."""
    starts, ends = stored_moment(window.starts_at), stored_moment(window.ends_at)
    if starts is None or ends is None:
        return Progress(0, goal.get("count") or goal["amount"])

    def inside(event: dict[str, Any]) -> bool:
        at = stored_moment(event["at"])
        return at is not None and starts <= at < ends

    counted = [e for e in events if e["type"] == goal["event_type"] and inside(e)]
    if "count" in goal:
        return Progress(len(counted), goal["count"])
    total = round(sum(e.get("amount") or 0 for e in counted), 2)
    return Progress(total, goal["amount"])


# --- the entities (storage/engagements.py maps them to items) --------------------


@dataclass(frozen=True)
class Engagement:
    id: str
    kind: str
    name: str
    segments: list[str]
    starts_at: str
    ends_at: str
    status: str
    version: int
    created_at: str
    updated_at: str
    body: str | None = None
    goal: dict[str, Any] | None = None
    reward: dict[str, Any] | None = None
    status_reason: str | None = None


class StaleEngagement(Exception):
    """It changed (or vanished) since it was read."""


@dataclass(frozen=True)
class Reward:
    id: str
    contact_id: str
    amount: float
    currency: str
    note: str | None
    source: dict[str, Any] = field(default_factory=dict)
    at: str = ""
