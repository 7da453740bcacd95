"""The contacts of one tenant as the readers see them: segments, evaluation, membership, sending and
triggers. (Writing contacts still goes through storage/contacts.py directly; ARCHITECTURE.md.)"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from chalicelib.domain.campaigns import Ordinals
from chalicelib.domain.contacts import Contact

Events = list[dict[str, Any]]
"""A contact's events, each {"id", "type", "at", "amount", "properties"}, in id order."""


class ContactReader(Protocol):
    def get_contacts(self, contact_ids: Iterable[str]) -> dict[str, Contact]:
        """Those that exist, by id (a malformed or unknown id is left out)."""

    def read_contact(self, contact_id: str) -> tuple[Contact | None, Events]:
        """One contact with its events, strongly consistent."""

    def read_shard(self, shard: int, with_events: bool = True) -> tuple[list[Contact], dict[str, Events]]:
        """Every contact of a shard (in id order) and, unless ``with_events`` is False, their events by id."""

    def postings(self, tags: Iterable[str]) -> dict[str, Ordinals]:
        """Each tag's contacts as a sorted array of ordinals (planner.EVERYONE: every contact)."""

    def count_tag(self, tag: str) -> int: ...
