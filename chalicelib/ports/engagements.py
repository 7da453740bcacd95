"""One tenant's announcements and challenges, and its contacts' reward ledgers."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.domain.engagements import Engagement, Reward

Position = dict[str, Any] | None


class EngagementRepository(Protocol):
    def create(self, engagement: Engagement) -> None: ...

    def save(self, before: Engagement, after: Engagement) -> None:
        """Replace it whole unless it changed since ``before`` was read (StaleEngagement)."""

    def get(self, kind: str, engagement_id: str) -> Engagement | None: ...

    def page(self, kind: str, limit: int, start: Position) -> tuple[list[Engagement], Position]: ...

    def all_of(self, kind: str) -> list[Engagement]:
        """Every announcement, or every challenge (a tenant has tens, not millions)."""

    def delete(self, engagement: Engagement) -> None:
        """Unless it changed since it was read (StaleEngagement)."""

    def add_reward(self, ordinal: int, reward: Reward) -> bool:
        """Write the ledger line unless one with its id exists; True if this call wrote it."""

    def put_rewards(self, lines: list[tuple[int, Reward]]) -> None:
        """Write many (ordinal, reward) lines; a line written again under its id replaces itself."""

    def rewards_page(
        self, contact_id: str, ordinal: int, limit: int, start: Position
    ) -> tuple[list[Reward], Position]: ...

    def all_rewards(self, contact_id: str, ordinal: int) -> list[Reward]: ...
