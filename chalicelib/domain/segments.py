"""Segments: the entity, its statuses and the rules that move between them (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# --- the entities (storage/segments.py maps them to items) --------------------


@dataclass(frozen=True)
class Segment:
    id: str
    name: str
    description: str | None
    criteria: dict[str, Any]
    tags: frozenset[str]
    groups: frozenset[str]
    references: frozenset[str]
    time_dependent: bool
    version: int
    status: str
    created_at: str
    updated_at: str
    status_reason: str | None = None
    invalid_because: str | None = None
    member_count: int | None = None
    generation: str | None = None
    retired_generation: str | None = None
    job_id: str | None = None
    evaluated_version: int | None = None
    evaluated_at: str | None = None


class StaleSegment(Exception):
    """The segment changed (or went) since it was read."""
