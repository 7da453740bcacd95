"""Segments: the entity, its statuses and the rules that move between them (no I/O).

A segment is ``evaluating`` while the job it names (``job_id``) builds a new membership
generation, ``ready`` once that generation is published, ``failed`` when the job failed (the
previous membership stays), and ``invalid`` (with a reason) when something it uses is deleted: a
tag, a group, or a segment it includes. An invalid segment keeps serving its last membership, is
not re-evaluated, and cannot be included in other segments until its criteria are fixed; fixing a
segment revives the segments that were invalid only because of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from chalicelib.domain.clock import stored_moment
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.validation import validate

EVALUATING, READY, FAILED, INVALID = "evaluating", "ready", "failed", "invalid"
STATUSES = (EVALUATING, READY, FAILED, INVALID)


@dataclass(frozen=True)
class Segment:
    id: str
    name: str
    description: str | None
    criteria: dict[str, Any]
    tags: frozenset[str]
    groups: frozenset[str]
    references: frozenset[str]  # the segments its criteria include
    time_dependent: bool
    version: int
    status: str
    created_at: str
    updated_at: str
    status_reason: str | None = None
    invalid_because: str | None = None  # "tag:…", "group:…" or "segment:…": what a fix must repair
    member_count: int | None = None
    generation: str | None = None  # the published membership (None until the first evaluation ends)
    retired_generation: str | None = None
    job_id: str | None = None  # the evaluation the segment waits for
    evaluated_version: int | None = None
    evaluated_at: str | None = None

    def uses(self, kind: str, key: str) -> bool:
        """Whether the criteria name the tag, group or segment ``key``."""
        return key in {"tag": self.tags, "group": self.groups, "segment": self.references}[kind]

    @property
    def pending_generation(self) -> str | None:
        """The generation an evaluation is writing, while one runs."""
        return self.job_id if self.status == EVALUATING and self.job_id != self.generation else None

    @property
    def has_membership(self) -> bool:
        """Whether real-time updates keep a membership of it (published or being built)."""
        return self.status != INVALID and (self.generation is not None or self.pending_generation is not None)


class StaleSegment(Exception):
    """The segment changed (or went) since it was read."""


EVALUATION_FIELDS = frozenset(
    {"member_count", "generation", "retired_generation", "job_id", "evaluated_version", "evaluated_at"}
)
"""Fields that evaluations and real-time updates own; an edit never writes them back."""

REFRESH_EVERY = timedelta(hours=1)
"""How often time-dependent segments are re-evaluated (the schedule's rate, in handlers/schedules.py)."""
_REFRESH_SLACK = timedelta(minutes=5)


def referrers(segments: Iterable[Segment], segment_id: str) -> list[Segment]:
    """Segments that include ``segment_id``, directly or through others (each once, nearest first)."""
    by_reference: dict[str, list[Segment]] = {}
    for segment in segments:
        for reference in segment.references:
            by_reference.setdefault(reference, []).append(segment)
    found: dict[str, Segment] = {}
    queue = [segment_id]
    while queue:
        for referrer in by_reference.get(queue.pop(), ()):
            if referrer.id not in found:
                found[referrer.id] = referrer
                queue.append(referrer.id)
    return list(found.values())


def edited(before: Segment, after: Segment, *, criteria_given: bool, now: str) -> Segment | None:
    """``after`` as the next version of ``before`` (None: nothing changed). New criteria on an invalid
    segment revive it: it evaluates again."""
    revived = before.status == INVALID and criteria_given
    if after == before and not revived:
        return None
    after = replace(after, version=before.version + 1, updated_at=now)
    if revived:
        after = replace(after, status=EVALUATING, status_reason=None, invalid_because=None)
    return after


def revivable_by(referrer: Segment, revived: set[str]) -> bool:
    """Whether ``referrer`` was invalid only because of a segment that has just been fixed."""
    return referrer.status == INVALID and (referrer.invalid_because or "").removeprefix("segment:") in revived


def invalidations(
    segments: list[Segment], segment: Segment, reason: str, because: str
) -> list[tuple[str, dict[str, Any]]]:
    """The fields that mark ``segment`` invalid, and every segment that includes it (each naming the
    included segment that broke it), as (segment id, fields)."""
    changes = [(segment.id, {"status": INVALID, "status_reason": reason, "invalid_because": because, "job_id": None})]
    found = referrers(segments, segment.id)
    broken = {segment.id} | {r.id for r in found}
    for referrer in found:
        cause = min(referrer.references & broken)
        changes.append(
            (
                referrer.id,
                {
                    "status": INVALID,
                    "status_reason": f"it includes segment {cause}, which is invalid: {reason}",
                    "invalid_because": f"segment:{cause}",
                    "job_id": None,
                },
            )
        )
    return changes


def due_for_refresh(segment: Segment, now: datetime) -> bool:
    """A ready segment whose last evaluation is (nearly) an hour old."""
    last = stored_moment(segment.evaluated_at)
    return segment.status == READY and (last is None or now - last >= REFRESH_EVERY - _REFRESH_SLACK)


def failure_fields(segment: Segment, job_id: str, failure: str) -> dict[str, Any] | None:
    """What a failed evaluation changes: only a segment still waiting for that job becomes ``failed``."""
    if segment.job_id != job_id or segment.status != EVALUATING:
        return None
    reason = f"evaluation {job_id} failed: {failure}; the previous membership stays"
    return {"status": FAILED, "status_reason": reason}


# --- what a request asks for ---------------------------------------------------------------------------

MAX_NAME = 200
MAX_DESCRIPTION = 2_000
MAX_SAMPLE = 50

CRITERIA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A criteria node (API.md, Segments): all/any/not, tag, group, segment, attr, event.",
}
CREATE_SEGMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "criteria"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
        "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION},
        "criteria": CRITERIA_SCHEMA,
    },
}
PATCH_SEGMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": CREATE_SEGMENT_SCHEMA["properties"],
}
PREVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["criteria"],
    "properties": {
        "criteria": CRITERIA_SCHEMA,
        "sample_size": {"type": "integer", "minimum": 0, "maximum": MAX_SAMPLE, "default": 10},
    },
}


@dataclass(frozen=True)
class SegmentDraft:
    """A new segment as a request describes it (its criteria not yet checked against the tenant)."""

    name: str
    description: str | None
    criteria: dict[str, Any]


@dataclass(frozen=True)
class SegmentChanges:
    """An edit: only the fields in ``given`` change (a description given as None is cleared)."""

    given: frozenset[str]
    name: str = ""
    description: str | None = None
    criteria: dict[str, Any] | None = None


@dataclass(frozen=True)
class PreviewRequest:
    criteria: dict[str, Any]
    sample_size: int


def _name(value: str) -> str:
    name = value.strip()
    if not name:
        raise ValidationFailed("name", "name must not be blank.")
    return name


def draft_from(body: Any) -> SegmentDraft:
    validate(body, CREATE_SEGMENT_SCHEMA)
    return SegmentDraft(_name(body["name"]), body.get("description"), body["criteria"])


def changes_from(body: Any) -> SegmentChanges:
    validate(body, PATCH_SEGMENT_SCHEMA)
    return SegmentChanges(
        given=frozenset(body),
        name=_name(body["name"]) if "name" in body else "",
        description=body.get("description"),
        criteria=body.get("criteria"),
    )


def preview_from(body: Any) -> PreviewRequest:
    validate(body, PREVIEW_SCHEMA)
    return PreviewRequest(body["criteria"], body.get("sample_size", 10))


# --- size history -----------------------------------------------------------------------------------------

HISTORY_KEPT_DAYS = 400
"""A segment's daily points are kept this long (DynamoDB's TTL removes older ones)."""
HISTORY_DAYS_DEFAULT = 30


@dataclass(frozen=True)
class SizePoint:
    """One UTC day of a segment: its member count at the day's last change, and how many contacts entered and
    left it that day (each transition event counted once)."""

    date: str  # YYYY-MM-DD
    members: int | None = None
    entered: int = 0
    exited: int = 0


def history_series(
    points: Iterable[SizePoint], today: date, days: int, current_members: int | None
) -> list[dict[str, Any]]:
    """The ``days`` UTC days up to ``today``, oldest first: a day without a point carries the members of the
    last one before it (none entered or left); today shows the segment's current count; days before the
    segment's first point are left out."""
    stored = {point.date: point for point in points}
    ordered = sorted(stored)
    first = today - timedelta(days=days - 1)
    members = next((stored[d].members for d in reversed(ordered) if d < first.isoformat()), None)
    known = bool(ordered) and ordered[0] < first.isoformat()
    series = []
    for offset in range(days):
        day = (first + timedelta(days=offset)).isoformat()
        point = stored.get(day)
        if point is not None:
            known = True
            members = point.members if point.members is not None else members
        if day == today.isoformat() and current_members is not None:
            members, known = current_members, True
        if known:
            series.append(
                {
                    "date": day,
                    "members": members,
                    "entered": point.entered if point else 0,
                    "exited": point.exited if point else 0,
                }
            )
    return series
