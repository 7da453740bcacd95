"""The contacts of one tenant: their fields, events, uniqueness guards and tag posting lists.

``ContactReader`` is what readers need (segments, evaluation, membership, sending, triggers);
``ContactRepository`` adds the writes (contacts, imports, tags, groups, trigger actions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from chalicelib.domain.campaigns import Ordinals
from chalicelib.domain.contacts import Contact

Events = list[dict[str, Any]]
"""A contact's events, each {"id", "type", "at", "amount", "properties"}, in id order."""

Position = dict[str, Any] | None

EventAppend = tuple[Contact, Sequence[Mapping[str, Any]], Sequence[int]]
"""A contact, events to store for it, and when each expires (epoch seconds)."""

ContactChange = tuple[Contact | None, Contact | None]
"""(before, after): a create is (None, contact), a delete (contact, None)."""


class DirtyMark(NamedTuple):
    """Why a contact is dirty: the marks naming it, when the oldest was left (``at``) and the newest
    (``latest``). Every write leaves a new mark (one per shard it touches, naming its contacts there) and a mark
    never changes, so ``marks`` grows with every write until a compaction forgets the marks it read."""

    marks: frozenset[str]
    at: str
    latest: str


class ContactReader(Protocol):
    def get_contacts(self, contact_ids: Iterable[str]) -> dict[str, Contact]:
        """Those that exist, by id (a malformed or unknown id is left out)."""

    def read_contact(self, contact_id: str) -> tuple[Contact | None, Events]:
        """One contact with its events, strongly consistent."""

    def read_shard(self, shard: int, with_events: bool = True) -> tuple[list[Contact], dict[str, Events]]:
        """Every contact of a shard (in id order) and, unless ``with_events`` is False, their events by id."""

    def read_contacts(
        self, contact_ids: Iterable[str], with_events: bool = True
    ) -> tuple[list[Contact], dict[str, Events]]:
        """Those that exist, strongly consistent, with their events by id unless ``with_events`` is False."""

    def dirty(self, shard: int, limit: int | None = None) -> dict[str, DirtyMark]:
        """The shard's contacts written (created, changed, deleted, given events) since their marks were
        forgotten, strongly consistent; with a ``limit``, reading stops once that many contacts are known."""

    def postings(self, tags: Iterable[str]) -> dict[str, Ordinals]:
        """Each tag's contacts as a sorted array of ordinals (planner.EVERYONE: every contact)."""

    def count_tag(self, tag: str) -> int: ...


class ContactRepository(ContactReader, Protocol):
    def allocate_ordinals(self, count: int) -> int:
        """Reserve ``count`` consecutive ordinals (never handed out again); return the first."""

    def write(self, changes: Sequence[ContactChange], messages: Sequence[Mapping[str, Any]] = ()) -> None:
        """Apply the changes and write the change ``messages`` that announce them to the outbox, all or nothing;
        each contact's guards (external_id, email) and posting lists move with it.

        Raises StaleContact when a contact changed since its ``before`` was read, TakenIdentifier when an
        external_id or email belongs to another contact."""

    def transaction_batches(self, changes: Sequence[ContactChange]) -> list[list[ContactChange]]:
        """The changes grouped, in order, so that each group fits one :meth:`write`."""

    def get_contact(self, contact_id: str) -> Contact | None:
        """Strongly consistent; None for an unknown or malformed id."""

    def find_contact_id(self, *, external_id: str | None = None, email: str | None = None) -> str | None: ...

    def find_contact_ids_many(
        self, *, external_ids: Iterable[str] = (), emails: Iterable[str] = ()
    ) -> tuple[dict[str, str], dict[str, str]]:
        """(external_id → contact id, email → contact id) of those that exist."""

    def page_of_shards(self, limit: int, start: Position) -> tuple[list[Contact], Position]:
        """Every contact, shard by shard, in id order within a shard."""

    def page_of_group(self, group_id: str, limit: int, start: Position) -> tuple[list[Contact], Position]:
        """A group's contacts in id order."""

    def tag_ordinals(self, tag: str) -> set[int]: ...

    def put_events_many(self, appends: Sequence[EventAppend]) -> None:
        """Store each contact's events (the same event id overwrites itself), each expiring at its expiry (epoch
        seconds), batched across the contacts."""

    def events_of(self, contact: Contact, limit: int, start: Position) -> tuple[Events, Position]:
        """A contact's events in id order."""

    def forget_dirty(self, shard: int, seen: Mapping[str, DirtyMark]) -> None:
        """Remove the marks ``seen`` names (a snapshot now holds those writes); marks left since stay."""

    def delete_contact_records(self, contact: Contact) -> int:
        """Delete what a deleted contact leaves beside it (events, rewards, announcements given); return how many."""
