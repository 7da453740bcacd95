"""The segments of one tenant: definitions, their version history, their membership generations and their
daily size history."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from chalicelib.domain.segments import Segment, SizePoint

Position = dict[str, Any] | None
ANY_JOB: Any = object()
"""``expected_job_id`` default: update whatever job the segment waits for."""


class SegmentRepository(Protocol):
    def create(self, segment: Segment) -> None:
        """Store a new segment and its first version."""

    def save(self, before: Segment, after: Segment) -> None:
        """Write what an edit changed, unless the segment changed since ``before`` was read (StaleSegment).
        A new ``version`` goes into the history; evaluation fields (domain EVALUATION_FIELDS) are never
        written back."""

    def get(self, segment_id: str) -> Segment | None: ...

    def all_segments(self) -> list[Segment]: ...

    def page(self, limit: int, start: Position) -> tuple[list[Segment], Position]: ...

    def versions(self, segment_id: str, limit: int, start: Position) -> tuple[list[dict[str, Any]], Position]:
        """Saved versions, newest first."""

    def delete(self, segment_id: str) -> None:
        """The segment, its history and every membership generation."""

    def update_fields(self, segment_id: str, *, expected_job_id: Any = ANY_JOB, **fields: Any) -> bool:
        """Set bookkeeping fields (None removes) on a segment that still exists and, given
        ``expected_job_id``, still waits for that job (None: for none); False when it does not."""

    def write_shard_members(self, segment_id: str, generation: str, shard: int, ordinals: Iterable[int]) -> None:
        """One shard's members of a generation, replacing what an earlier attempt wrote."""

    def publish(self, segment_id: str, job_id: str, fields: dict[str, Any]) -> str | None:
        """Flip the segment to the generation ``job_id`` wrote (setting ``fields`` and the member count)
        if it still waits for that job; return the generation it replaced. StaleSegment when superseded
        or gone. Repeating it returns the same retired generation."""

    def count_members(self, segment_id: str, generation: str) -> int: ...

    def delete_generation(self, segment_id: str, generation: str) -> None: ...

    def members(self, segment_id: str, generation: str) -> set[int]: ...

    def page_of_members(
        self, segment_id: str, generation: str, limit: int, position: Position
    ) -> tuple[list[int], Position]:
        """Member ordinals in (shard, ordinal) order; a position stays valid across a re-evaluation."""

    def shard_members(self, segment_id: str, generation: str, shard: int) -> set[int]: ...

    def count_transition(
        self, segment_id: str, day: str, entered: bool, event_id: str, members: int | None, kept_until: int
    ) -> bool:
        """Add one to ``day``'s entered (or exited) count and set its members, once per ``event_id``; False when
        that event was counted already. ``kept_until``: epoch seconds after which the point may go."""

    def record_members(self, segment_id: str, day: str, members: int, kept_until: int) -> None:
        """Set ``day``'s member count (after an evaluation), keeping its counts."""

    def size_points(self, segment_id: str) -> list[SizePoint]:
        """Every stored daily point of the segment, oldest first."""
