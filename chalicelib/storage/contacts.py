"""Contacts, their events, uniqueness guards and the tag posting lists.

Layout (see also storage/table.py):

| item | pk | sk |
| --- | --- | --- |
| contact | ``TENANT#{t}#SHARD#{nn}`` | ``C#{contact_id}`` |
| event of a contact | ``TENANT#{t}#SHARD#{nn}`` | ``C#{contact_id}#E#{event_id}`` |
| external_id / email guard | ``TENANT#{t}#XID#{v}`` / ``TENANT#{t}#EMAIL#{v}`` | ``#GUARD`` |
| tag posting-list chunk | ``TENANT#{t}#TAG#{name}`` | ``CHUNK#{k}`` (ordinals k·2048 …) |
| tag count of a chunk | ``TENANT#{t}#TAG#{name}`` | ``COUNT#{k}`` |
| every contact (a posting list) | ``TENANT#{t}#TAG##everyone`` | ``CHUNK#{k}`` / ``COUNT#{k}`` |
| ordinal counter | ``TENANT#{t}`` | ``#COUNTERS`` |
| dirty mark: contacts of the shard one write changed | ``TENANT#{t}#SHARD#{nn}`` | ``D#{token}`` |

A contact and its events share a partition, so one Query returns a whole shard
(contacts and events) for evaluation, or one contact with its events. Every
write of a contact is a transaction conditioned on its version, and moves its
guards and tag-index entries in the same transaction, so they never disagree.

The same transaction marks its contacts *dirty* for their shards' snapshots (storage/snapshots.py): one
small item per shard the write touches, naming its contacts there, under a fresh token. A mark never
changes, so a compaction removes exactly the marks it read and a write that came since keeps its own
(services/shards.py). Events, written without a transaction, mark their contacts before and after they
are stored. One item per shard and write, not per contact, because on moto (and in DynamoDB's bill) the
items a write carries are what it costs.
"""

from __future__ import annotations

import random
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pynamodb.attributes import (
    MapAttribute,
    NumberAttribute,
    NumberSetAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.clock import system_clock, to_rfc3339
from chalicelib.domain.contacts import (
    SHARDS,
    Contact,
    StaleContact,
    TakenIdentifier,
    ordinal_of,
    shard_of,
)
from chalicelib.domain.planner import EVERYONE
from chalicelib.ports.contacts import ContactChange, DirtyMark, EventAppend
from chalicelib.storage import outbox
from chalicelib.storage.mapping import Mapper, plain_map
from chalicelib.storage.table import Gsi1, MainTableModel, cancellation_reasons, connection, put_all, shard_pk

TAG_CHUNK_SIZE = 2_048
"""Ordinals per posting-list item. DynamoDB bills a write by the whole item, so small chunks keep a
tag change near 10 write units; reads cost the same bytes however the list is chunked."""


def tag_pk(tenant_id: str, tag: str) -> str:
    return f"TENANT#{tenant_id}#TAG#{tag}"


def group_index_pk(tenant_id: str, group_id: str) -> str:
    return f"TENANT#{tenant_id}#GROUP#{group_id}"


class ContactItem(MainTableModel):
    contact_id = UnicodeAttribute()
    ordinal = NumberAttribute()
    external_id = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    first_name = UnicodeAttribute(null=True)
    last_name = UnicodeAttribute(null=True)
    group_id = UnicodeAttribute(null=True)
    tags = UnicodeSetAttribute(null=True)
    attributes: MapAttribute[str, Any] = MapAttribute(null=True)
    version = NumberAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi1 = Gsi1()


class EventItem(MainTableModel):
    contact_id = UnicodeAttribute()
    event_id = UnicodeAttribute()
    type = UnicodeAttribute()
    at = UnicodeAttribute()
    amount = NumberAttribute(null=True)
    properties: MapAttribute[str, Any] = MapAttribute(null=True)
    expires_at = NumberAttribute()


class GuardItem(MainTableModel):
    contact_id = UnicodeAttribute()


class TagChunkItem(MainTableModel):
    ordinals = NumberSetAttribute(null=True)


class TagCountItem(MainTableModel):
    """How many ordinals a posting-list chunk holds: small, so counting a tag reads ~1 KB, not the lists."""

    n = NumberAttribute(default=0)


class DirtyItem(MainTableModel):
    """A dirty mark: contacts of one shard that one write changed since the shard's snapshot was made (until a
    compaction folds them). Written once, never changed."""

    contact_ids = UnicodeSetAttribute(null=True)
    at = UnicodeAttribute()


MARK_PREFIX = "D#"
MARK_CONTACTS = 1_000
"""Contacts one mark names at most (~13 KB), far inside an item's 400 KB."""


def _marks(tenant_id: str, contacts: Iterable[Contact]) -> list[DirtyItem]:
    """The marks of one write: one per shard it touches (more past MARK_CONTACTS), each under a fresh token."""
    by_shard: dict[int, list[str]] = defaultdict(list)
    for contact in contacts:
        by_shard[shard_of(contact.ordinal)].append(contact.id)
    at = to_rfc3339(system_clock())
    marks = []
    for shard, ids in sorted(by_shard.items()):
        unique = sorted(set(ids))
        for start in range(0, len(unique), MARK_CONTACTS):
            marks.append(
                DirtyItem(
                    shard_pk(tenant_id, shard),
                    f"{MARK_PREFIX}{secrets.token_hex(8)}",
                    contact_ids=set(unique[start : start + MARK_CONTACTS]),
                    at=at,
                )
            )
    return marks


class CounterItem(MainTableModel):
    next_ordinal = NumberAttribute(default=0)


CONTACT_MAPPER = Mapper(Contact, ContactItem, renamed={"id": "contact_id", "group": "group_id"})
"""Contact fields are ContactItem attributes of the same names (storage/mapping.py)."""

contact_from_item = CONTACT_MAPPER.entity


def _item(tenant_id: str, contact: Contact) -> ContactItem:
    return ContactItem(
        shard_pk(tenant_id, shard_of(contact.ordinal)),
        f"C#{contact.id}",
        **CONTACT_MAPPER.attributes(contact),
        gsi1pk=group_index_pk(tenant_id, contact.group) if contact.group else None,
        gsi1sk=contact.id if contact.group else None,
    )


def _guard_keys(tenant_id: str, contact: Contact) -> dict[str, tuple[str, str]]:
    keys = {}
    if contact.external_id:
        keys["external_id"] = (f"TENANT#{tenant_id}#XID#{contact.external_id}", "#GUARD")
    if contact.email:
        keys["email"] = (f"TENANT#{tenant_id}#EMAIL#{contact.email}", "#GUARD")
    return keys


def _chunk_changes(added: Iterable[tuple[str, int]], removed: Iterable[tuple[str, int]]):
    """Group (tag, ordinal) pairs by posting-list chunk."""
    adds: dict[tuple[str, int], set[int]] = defaultdict(set)
    deletes: dict[tuple[str, int], set[int]] = defaultdict(set)
    for tag, ordinal in added:
        adds[(tag, ordinal // TAG_CHUNK_SIZE)].add(ordinal)
    for tag, ordinal in removed:
        deletes[(tag, ordinal // TAG_CHUNK_SIZE)].add(ordinal)
    return adds, deletes


def _write_chunks(transaction: TransactWrite, tenant_id: str, adds, deletes) -> None:
    """Posting-list and count updates; exact because callers pass only real differences."""
    for (tag, chunk), ordinals in adds.items():
        transaction.update(
            TagChunkItem(tag_pk(tenant_id, tag), f"CHUNK#{chunk:05d}"), actions=[TagChunkItem.ordinals.add(ordinals)]
        )
        transaction.update(
            TagCountItem(tag_pk(tenant_id, tag), f"COUNT#{chunk:05d}"), actions=[TagCountItem.n.add(len(ordinals))]
        )
    for (tag, chunk), ordinals in deletes.items():
        transaction.update(
            TagChunkItem(tag_pk(tenant_id, tag), f"CHUNK#{chunk:05d}"), actions=[TagChunkItem.ordinals.delete(ordinals)]
        )
        transaction.update(
            TagCountItem(tag_pk(tenant_id, tag), f"COUNT#{chunk:05d}"), actions=[TagCountItem.n.add(-len(ordinals))]
        )


def _changed(change: ContactChange) -> Contact:
    before, after = change
    contact = after or before
    assert contact is not None  # a change has a before or an after
    return contact


def _postings_of(contact: Contact | None) -> frozenset[str]:
    """The posting lists a contact is on: its tags and the list of every contact."""
    return contact.tags | {EVERYONE} if contact is not None else frozenset()


_CONFLICT_ATTEMPTS = 8


def _write_contacts_once(
    tenant_id: str, changes: Sequence[ContactChange], messages: Sequence[Mapping[str, Any]]
) -> None:
    added: list[tuple[str, int]] = []
    removed: list[tuple[str, int]] = []
    try:
        with TransactWrite(connection=connection()) as transaction:
            for mark in _marks(tenant_id, map(_changed, changes)):
                transaction.save(mark)
            for before, after in changes:
                if after is not None:
                    item = _item(tenant_id, after)
                    if before is None:
                        transaction.save(item, condition=ContactItem.pk.does_not_exist())
                    else:
                        transaction.save(item, condition=ContactItem.version == before.version)
                elif before is not None:
                    transaction.delete(_item(tenant_id, before), condition=ContactItem.version == before.version)
                changed = _changed((before, after))
                old_guards = _guard_keys(tenant_id, before) if before else {}
                new_guards = _guard_keys(tenant_id, after) if after else {}
                contact_id = changed.id
                for name, key in new_guards.items():
                    if old_guards.get(name) != key:
                        transaction.save(
                            GuardItem(*key, contact_id=contact_id), condition=GuardItem.pk.does_not_exist()
                        )
                for name, key in old_guards.items():
                    if new_guards.get(name) != key:
                        transaction.delete(GuardItem(*key), condition=GuardItem.contact_id == contact_id)
                old_tags, new_tags = _postings_of(before), _postings_of(after)
                ordinal = changed.ordinal
                added += [(tag, ordinal) for tag in new_tags - old_tags]
                removed += [(tag, ordinal) for tag in old_tags - new_tags]
            _write_chunks(transaction, tenant_id, *_chunk_changes(added, removed))
            outbox.add(transaction, messages)
    except TransactWriteError as error:
        if "ConditionalCheckFailed" not in cancellation_reasons(error):
            raise  # conflicts and throttling: the caller retries
        taken = _taken_guard(tenant_id, changes)
        if taken:
            raise TakenIdentifier(taken) from error
        raise StaleContact() from error


def _taken_guard(tenant_id: str, changes: Sequence[ContactChange]) -> str | None:
    for before, after in changes:
        if after is None:
            continue
        old = _guard_keys(tenant_id, before) if before else {}
        for name, key in _guard_keys(tenant_id, after).items():
            if old.get(name) == key:
                continue
            try:
                owner = GuardItem.get(*key).contact_id
            except GuardItem.DoesNotExist:
                continue
            if owner != after.id:
                return name
    return None


TRANSACTION_OPERATIONS = 100
OUTBOX_OPERATIONS = 1
"""The outbox items a transaction's messages take: one (storage/outbox.py)."""


def _operations(tenant_id: str, before: Contact | None, after: Contact | None) -> tuple[int, set[tuple[str, int]]]:
    """DynamoDB operations a change needs on its own (the contact and its guards), and the posting-list chunks
    it touches."""
    old_guards = _guard_keys(tenant_id, before) if before else {}
    new_guards = _guard_keys(tenant_id, after) if after else {}
    guard_ops = len(set(old_guards.values()) ^ set(new_guards.values()))
    ordinal = _changed((before, after)).ordinal
    chunks = {(tag, ordinal // TAG_CHUNK_SIZE) for tag in _postings_of(before) ^ _postings_of(after)}
    return 1 + guard_ops, chunks


def _event_view(item: EventItem) -> dict[str, Any]:
    return {
        "id": item.event_id,
        "type": item.type,
        "at": item.at,
        "amount": item.amount,
        "properties": plain_map(item.properties),
    }


def _read_partition(
    tenant_id: str, shard: int, prefix: str, with_events: bool
) -> tuple[list[Contact], dict[str, list[dict[str, Any]]]]:
    contacts: list[Contact] = []
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    start = None
    while True:
        page = MainTableModel._get_connection().query(  # the low-level call: items of two types come back
            shard_pk(tenant_id, shard),
            range_key_condition=MainTableModel.sk.startswith(prefix),
            filter_condition=None if with_events else ContactItem.ordinal.exists(),
            consistent_read=True,
            exclusive_start_key=start,
        )
        for raw in page.get("Items", ()):
            if "#E#" in raw["sk"]["S"]:
                event = EventItem.from_raw_data(raw)
                events[event.contact_id].append(_event_view(event))
            else:
                contacts.append(contact_from_item(ContactItem.from_raw_data(raw)))
        start = page.get("LastEvaluatedKey")
        if not start:
            return contacts, events


class ContactTable:
    """The ContactRepository port on DynamoDB, bound to one tenant."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def allocate_ordinals(self, count: int) -> int:
        """Reserve ``count`` consecutive ordinals; return the first."""
        counter = CounterItem(f"TENANT#{self.tenant_id}", "#COUNTERS")
        counter.update(actions=[CounterItem.next_ordinal.add(count)])
        return int(counter.next_ordinal) - count + 1

    def write(self, changes: Sequence[ContactChange], messages: Sequence[Mapping[str, Any]] = ()) -> None:
        """Apply (before, after) pairs in one transaction: create (None, c), update (b, a), delete (b, None),
        with the change ``messages`` that announce them written to the outbox in the same transaction.

        Raises StaleContact when a contact changed since ``before`` was read and
        TakenIdentifier when an external_id or email belongs to another contact.
        Concurrent transactions on the same posting-list chunk are retried.
        """
        only_creates = all(before is None for before, _ in changes)
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                return _write_contacts_once(self.tenant_id, changes, messages)
            except TransactWriteError as error:
                if "TransactionConflict" not in cancellation_reasons(error) or attempt == _CONFLICT_ATTEMPTS - 1:
                    raise
            except StaleContact:
                # New contacts cannot be stale: an identifier was taken when the transaction ran and free when
                # looked at (its contact deleted or renamed in between), so the write may go through now.
                if not only_creates or attempt == _CONFLICT_ATTEMPTS - 1:
                    raise
            time.sleep(random.uniform(0.005, 0.02) * (attempt + 1))

    def transaction_batches(self, changes: Sequence[ContactChange]) -> list[list[ContactChange]]:
        """Group changes so each write transaction stays within DynamoDB's 100 operations: each change's own
        (the contact, its guards), then one mark per shard, the outbox item and two per posting-list chunk.
        Taken shard by shard, so a transaction names few shards and so leaves few marks."""
        batches: list[list[ContactChange]] = []
        current: list[ContactChange] = []
        own_ops, shards, chunks = 0, set[int](), set[tuple[str, int]]()
        for change in sorted(changes, key=lambda change: shard_of(_changed(change).ordinal)):
            ops, touched = _operations(self.tenant_id, *change)
            shard = shard_of(_changed(change).ordinal)
            shared = len(shards | {shard}) + OUTBOX_OPERATIONS + 2 * len(chunks | touched)
            if current and own_ops + ops + shared > TRANSACTION_OPERATIONS:
                batches.append(current)
                current, own_ops, shards, chunks = [], 0, set(), set()
            current.append(change)
            own_ops += ops
            shards.add(shard)
            chunks |= touched
        if current:
            batches.append(current)
        return batches

    def find_contact_ids_many(
        self, *, external_ids: Iterable[str] = (), emails: Iterable[str] = ()
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Batch lookup of contact ids by external_id and by email."""
        keys = [(f"TENANT#{self.tenant_id}#XID#{v}", "#GUARD") for v in dict.fromkeys(external_ids)]
        keys += [(f"TENANT#{self.tenant_id}#EMAIL#{v}", "#GUARD") for v in dict.fromkeys(emails)]
        by_external_id: dict[str, str] = {}
        by_email: dict[str, str] = {}
        for guard in GuardItem.batch_get(keys, consistent_read=True):
            kind, value = guard.pk.split("#", 3)[2:]
            (by_external_id if kind == "XID" else by_email)[value] = guard.contact_id
        return by_external_id, by_email

    def get_contact(self, contact_id: str) -> Contact | None:
        ordinal = ordinal_of(contact_id)
        if ordinal is None:
            return None
        try:
            item = ContactItem.get(shard_pk(self.tenant_id, shard_of(ordinal)), f"C#{contact_id}", consistent_read=True)
        except ContactItem.DoesNotExist:
            return None
        return contact_from_item(item)

    def find_contact_id(self, *, external_id: str | None = None, email: str | None = None) -> str | None:
        if external_id:
            key = (f"TENANT#{self.tenant_id}#XID#{external_id}", "#GUARD")
        elif email:
            key = (f"TENANT#{self.tenant_id}#EMAIL#{email}", "#GUARD")
        else:
            return None
        try:
            return GuardItem.get(*key, consistent_read=True).contact_id
        except GuardItem.DoesNotExist:
            return None

    def get_contacts(self, contact_ids: Iterable[str]) -> dict[str, Contact]:
        keys = []
        for contact_id in dict.fromkeys(contact_ids):
            ordinal = ordinal_of(contact_id)
            if ordinal is not None:
                keys.append((shard_pk(self.tenant_id, shard_of(ordinal)), f"C#{contact_id}"))
        return {item.contact_id: contact_from_item(item) for item in ContactItem.batch_get(keys, consistent_read=True)}

    def page_of_shards(
        self, limit: int, position: dict[str, Any] | None
    ) -> tuple[list[Contact], dict[str, Any] | None]:
        """List contacts shard by shard; the position is (shard, last key)."""
        shard = int((position or {}).get("shard", 0))
        start = (position or {}).get("key")
        found: list[Contact] = []
        while shard < SHARDS and len(found) < limit:
            result = ContactItem.query(
                shard_pk(self.tenant_id, shard),
                ContactItem.sk.startswith("C#"),
                filter_condition=ContactItem.ordinal.exists(),
                limit=limit - len(found),
                last_evaluated_key=start,
            )
            found += [contact_from_item(item) for item in result]
            start = result.last_evaluated_key
            if start is None:
                shard, start = shard + 1, None
        if shard >= SHARDS:
            return found, None
        return found, {"shard": shard, "key": start}

    def page_of_group(
        self, group_id: str, limit: int, position: dict[str, Any] | None
    ) -> tuple[list[Contact], dict[str, Any] | None]:
        result = ContactItem.gsi1.query(
            group_index_pk(self.tenant_id, group_id), limit=limit, last_evaluated_key=position
        )
        return [contact_from_item(item) for item in result], result.last_evaluated_key

    def tag_ordinals(self, tag: str) -> set[int]:
        ordinals: set[int] = set()
        for chunk in TagChunkItem.query(
            tag_pk(self.tenant_id, tag), TagChunkItem.sk.startswith("CHUNK#"), consistent_read=True
        ):
            ordinals |= {int(o) for o in chunk.ordinals or ()}
        return ordinals

    def postings(self, tags: Iterable[str]) -> dict[str, np.ndarray]:
        """Posting lists as sorted arrays of ordinals (``EVERYONE`` gives every contact).

        Read with the low-level query: a chunk's number set becomes one array in one
        step instead of thousands of parsed numbers."""
        found: dict[str, np.ndarray] = {}
        for tag in tags:
            parts, start = [], None
            while True:
                page = MainTableModel._get_connection().query(
                    tag_pk(self.tenant_id, tag),
                    range_key_condition=MainTableModel.sk.startswith("CHUNK#"),
                    consistent_read=True,
                    exclusive_start_key=start,
                )
                parts += [np.array(raw["ordinals"]["NS"], dtype=np.int64) for raw in page["Items"] if "ordinals" in raw]
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
            found[tag] = np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
        return found

    def count_tag(self, tag: str) -> int:
        return sum(
            int(item.n)
            for item in TagCountItem.query(tag_pk(self.tenant_id, tag), TagCountItem.sk.startswith("COUNT#"))
        )

    def put_events_many(self, appends: Sequence[EventAppend]) -> None:
        """Store events (idempotently: the same event id overwrites itself), in batch writes across contacts,
        a few at once. Each contact is marked dirty before (a stop halfway leaves it marked) and after (a
        compaction that read it in between keeps the mark)."""
        contacts = list({contact.id: contact for contact, _, _ in appends}.values())
        self._mark_dirty(contacts)
        items = [
            EventItem(
                shard_pk(self.tenant_id, shard_of(contact.ordinal)),
                f"C#{contact.id}#E#{event['id']}",
                contact_id=contact.id,
                event_id=event["id"],
                type=event["type"],
                at=event["at"],
                amount=event.get("amount"),
                properties=event.get("properties") or None,
                expires_at=expires,
            )
            for contact, events, expiry in appends
            for event, expires in zip(events, expiry, strict=True)
        ]
        put_all(items)
        self._mark_dirty(contacts)

    def _mark_dirty(self, contacts: Iterable[Contact]) -> None:
        with DirtyItem.batch_write() as batch:
            for mark in _marks(self.tenant_id, contacts):
                batch.save(mark)

    def events_of(
        self, contact: Contact, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        pk = shard_pk(self.tenant_id, shard_of(contact.ordinal))
        result = EventItem.query(
            pk, EventItem.sk.startswith(f"C#{contact.id}#E#"), limit=limit, last_evaluated_key=start
        )
        return [_event_view(item) for item in result], result.last_evaluated_key

    def delete_contact_records(self, contact: Contact) -> int:
        """What a deleted contact leaves in its shard partition: its events, rewards and the announcements
        triggers gave it (sort keys ``C#{id}#E#``, ``RW#{id}#``, ``PA#{id}#``)."""
        pk = shard_pk(self.tenant_id, shard_of(contact.ordinal))
        deleted = 0
        for prefix in (f"C#{contact.id}#E#", f"RW#{contact.id}#", f"PA#{contact.id}#"):
            items = list(EventItem.query(pk, EventItem.sk.startswith(prefix), attributes_to_get=["pk", "sk"]))
            with EventItem.batch_write() as batch:
                for item in items:
                    batch.delete(item)
            deleted += len(items)
        return deleted

    def read_contact(self, contact_id: str) -> tuple[Contact | None, list[dict[str, Any]]]:
        """One contact with its events, in one strongly consistent query (ids have a fixed length,
        so the ``C#{id}`` prefix matches no other contact)."""
        ordinal = ordinal_of(contact_id)
        if ordinal is None:
            return None, []
        contacts, events = _read_partition(self.tenant_id, shard_of(ordinal), f"C#{contact_id}", with_events=True)
        return (contacts[0] if contacts else None), events.get(contact_id, [])

    def read_contacts(
        self, contact_ids: Iterable[str], with_events: bool = True
    ) -> tuple[list[Contact], dict[str, list[dict[str, Any]]]]:
        """Those of ``contact_ids`` that exist, with their events unless ``with_events`` is False."""
        if not with_events:
            return list(self.get_contacts(contact_ids).values()), {}
        contacts, events = [], {}
        for contact_id in dict.fromkeys(contact_ids):
            contact, own = self.read_contact(contact_id)
            if contact is not None:
                contacts.append(contact)
                events[contact_id] = own
        return contacts, events

    def dirty(self, shard: int, limit: int | None = None) -> dict[str, DirtyMark]:
        found: dict[str, DirtyMark] = {}
        for item in DirtyItem.query(
            shard_pk(self.tenant_id, shard), DirtyItem.sk.startswith(MARK_PREFIX), consistent_read=True
        ):
            mark = item.sk.removeprefix(MARK_PREFIX)
            for contact_id in item.contact_ids or ():
                marks, at, latest = found.get(contact_id, (frozenset(), item.at, item.at))
                found[contact_id] = DirtyMark(marks | {mark}, min(at, item.at), max(latest, item.at))
            if limit is not None and len(found) >= limit:
                break
        return found

    def forget_dirty(self, shard: int, seen: Mapping[str, DirtyMark]) -> None:
        pk = shard_pk(self.tenant_id, shard)
        with DirtyItem.batch_write() as batch:
            for mark in sorted(set().union(*(dirty.marks for dirty in seen.values()))):
                batch.delete(DirtyItem(pk, f"{MARK_PREFIX}{mark}"))

    def read_shard(self, shard: int, with_events: bool = True) -> tuple[list[Contact], dict[str, list[dict[str, Any]]]]:
        """Every contact of a shard with its events, in one pass over the shard's partition.

        Contacts and events share the partition (``C#{id}`` and ``C#{id}#E#…``), so a
        single paged, strongly consistent Query returns both; each raw item is parsed
        as what its key says. Without events, a filter drops them before they cross
        the network (DynamoDB still reads them).
        """
        return _read_partition(self.tenant_id, shard, "C#", with_events)
