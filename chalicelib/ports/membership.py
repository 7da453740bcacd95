"""Real-time membership of one tenant's contacts: each contact's stamp, its slots in the membership
generations, and the outbox of its entered/exited events (storage/membership.py explains the protocol)."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.domain.membership import MembershipCommit, Stamp


class MembershipLedger(Protocol):
    def read_stamps(self, contacts: list[tuple[str, int]]) -> dict[str, Stamp]:
        """The stamps of (contact id, ordinal) pairs, by contact id, in one batch read (``Stamp()`` for a
        contact before its first update)."""

    def memberships(self, ordinals: list[int], places: list[tuple[str, str]]) -> dict[int, dict[tuple[str, str], bool]]:
        """Whether each contact is in each (segment, generation), in one batch read of the chunks they share."""

    def commit(self, change: MembershipCommit) -> None:
        """All at once, or Superseded: the stamp moves on from ``change.stamp`` (and remembers ``known``), the
        moves land in their generations, each checked segment still publishes and waits for what its check
        says (its member count moved by ``count_delta``), and the events go into the outbox."""

    def pending_events(self, contact_id: str, ordinal: int) -> list[dict[str, Any]]:
        """Events a commit left to queue."""

    def forget_events(self, contact_id: str, ordinal: int, event_ids: list[str]) -> None: ...

    def stamps_changed_since(self, shard: int, moment: str) -> list[str]:
        """Ids of the shard's contacts whose membership was updated at or after ``moment``."""
