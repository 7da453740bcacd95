"""One tenant's journeys: their definitions (every version a contact may still be on), the contacts' positions,
and the counters per step (storage/journeys.py explains the records)."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.domain.journeys import Journey, Position

Cursor = dict[str, Any] | None
StepCounts = dict[tuple[str, str], int]


class JourneyRepository(Protocol):
    def create(self, journey: Journey) -> None: ...

    def save(self, before: Journey, after: Journey) -> None:
        """Replace it whole unless it changed since ``before`` was read (StaleJourney); a new definition
        version is kept beside the older ones."""

    def advance_schedule(self, journey: Journey, next_run_at: str) -> bool:
        """Move a schedule journey's next run on (a new revision) unless it changed since ``journey`` was read;
        False then (another worker moved it)."""

    def get(self, journey_id: str) -> Journey | None: ...

    def definition(self, journey_id: str, version: int) -> Journey | None:
        """The journey as it was at ``version`` (what contacts who entered then go through)."""

    def page(self, limit: int, start: Cursor) -> tuple[list[Journey], Cursor]: ...

    def all_journeys(self) -> list[Journey]: ...

    def delete(self, journey: Journey) -> None:
        """The journey, its versions and counters, unless it changed since it was read (StaleJourney).
        Positions left behind are dropped when they are next woken."""

    def position(self, journey_id: str, contact_id: str) -> Position | None: ...

    def positions(self, journey_id: str, contact_ids: list[str]) -> dict[str, Position]:
        """The positions of those of ``contact_ids`` inside the journey, by contact (strongly consistent)."""

    def move(self, before: Position | None, after: Position, steps: StepCounts, journey: dict[str, int]) -> bool:
        """Write ``after`` if the stored position is still ``before`` (absent for None), adding the counts in the
        same transaction; False if another worker moved it first."""

    def drop(self, position: Position) -> None:
        """Forget a position whose journey is gone."""

    def counters(self, journey_id: str) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """The journey's counters, and each step's."""
