"""What one contact's re-evaluation changes: pure rules, no I/O.

A segment serves one *published* generation and, while an evaluation runs, is
building a *pending* one. A real-time update puts the contact where its criteria
say in both: the published one (readers see it now; a transition there is a
``segment.entered`` / ``segment.exited`` event) and the pending one (so the
flip does not bring back what the contact was before the evaluation read it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

ENTERED, EXITED = "segment.entered", "segment.exited"


@dataclass(frozen=True)
class Target:
    segment_id: str
    published: str | None
    """Generation readers see (None before the first evaluation publishes)."""
    pending: str | None
    """Generation an evaluation is writing (None when none runs)."""
    job_id: str | None
    member: bool
    """Whether the contact matches the segment's criteria now."""


@dataclass(frozen=True)
class Transition:
    segment_id: str
    generation: str
    enter: bool
    published: bool


def transitions(targets: list[Target], current: dict[tuple[str, str], bool]) -> list[Transition]:
    """The moves that make ``current`` (membership per (segment, generation)) agree with ``targets``."""
    moves = []
    for target in targets:
        for generation, published in ((target.published, True), (target.pending, False)):
            if generation is not None and current[(target.segment_id, generation)] != target.member:
                moves.append(Transition(target.segment_id, generation, target.member, published))
    return moves


def event_id(tenant_id: str, segment_id: str, contact_id: str, kind: str, sequence: str) -> str:
    """Stable per transition: a redelivered or re-queued event keeps its id, so consumers can drop repeats."""
    digest = hashlib.sha256(f"{tenant_id}|{segment_id}|{contact_id}|{kind}|{sequence}".encode()).hexdigest()
    return f"sev_{digest[:24]}"


def transition_event(
    tenant_id: str, segment_id: str, contact_id: str, enter: bool, sequence: str, cause: dict[str, Any], at: str
) -> dict[str, Any]:
    kind = ENTERED if enter else EXITED
    return {
        "id": event_id(tenant_id, segment_id, contact_id, kind, sequence),
        "type": kind,
        "tenant_id": tenant_id,
        "segment_id": segment_id,
        "contact_id": contact_id,
        "cause": cause,
        "at": at,
    }


# --- the entities (storage/membership.py maps them to items) --------------------


@dataclass(frozen=True)
class Stamp:
    seq: int = 0
    known: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentCheck:
    """The segment item must still publish ``generation`` and wait for ``job_id``; ``count_delta``
    is added to its member_count; ``pending`` marks a write into the pending generation."""

    segment_id: str
    generation: str | None
    job_id: str | None
    count_delta: int
    pending: bool


@dataclass(frozen=True)
class MembershipCommit:
    """Everything one real-time update of a contact writes at once (ports/membership.py ``commit``)."""

    contact_id: str
    ordinal: int
    stamp: Stamp  # the stamp the update was computed from
    known: dict[str, bool]  # what the stamp remembers next: generation → member
    moves: list[Transition]
    checks: list[SegmentCheck]
    events: list[dict[str, Any]]
    changed_at: str


class Superseded(Exception):
    """Another update of the contact, or a segment flip, landed first: read again."""
