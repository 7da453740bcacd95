"""The contact-change outbox: the messages of a write are written in the same transaction as the contact write
they announce, as one item, queued right after, and the item deleted once queued.

| item | pk | sk | gsi1pk / gsi1sk |
| --- | --- | --- | --- |
| messages of a write, not queued yet | ``TENANT#{t}#SHARD#{nn}`` | ``CO#{id}`` | ``OUTBOX#{nn}`` / ``{at}#{t}#{id}`` |

(``{id}`` and ``{at}``: the first message's.)

One item per write, not per message: a write of a hundred contacts then costs one outbox item to write and
one to delete, where it cost two hundred. A write whose messages would not fit one item (400 KB) takes
several, cut the same way every time (:func:`_parts`), so whoever queued them deletes exactly those items.

If SQS refuses (or the process stops) between the write and the queue, the item stays, and the minute
relay (services/changes.relay_pending) finds it through the sparse ``OUTBOX#{nn}`` index partitions (one per
shard number, so no single index partition takes every write) and queues it. A message may then be
queued twice; consumers re-read the contact, so that is harmless, and nothing is lost.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from pynamodb.attributes import UnicodeAttribute
from pynamodb.transactions import TransactWrite

from chalicelib.domain.contacts import ordinal_of, shard_of
from chalicelib.storage.table import Gsi1, MainTableModel, older_in_shard_index, shard_pk

INDEX_PREFIX = "OUTBOX#"
PART_BYTES = 300_000
"""Message bytes one outbox item holds at most: well inside DynamoDB's 400 KB an item."""


class OutboxItem(MainTableModel):
    body = UnicodeAttribute()
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    gsi1 = Gsi1()


def _shard(message: Mapping[str, Any]) -> int:
    ordinal = ordinal_of(message["contact_id"])
    assert ordinal is not None  # messages name contacts that were written
    return shard_of(ordinal)


def _parts(messages: Sequence[Mapping[str, Any]]) -> Iterator[list[str]]:
    """The messages of one write, serialised, cut into parts of at most PART_BYTES (one item each)."""
    part: list[str] = []
    size = 0
    for message in messages:
        body = json.dumps(message, separators=(",", ":"))
        if part and size + len(body) > PART_BYTES:
            yield part
            part, size = [], 0
        part.append(body)
        size += len(body) + 1
    if part:
        yield part


def _items(messages: Sequence[Mapping[str, Any]]) -> Iterator[OutboxItem]:
    for part in _parts(messages):
        first = json.loads(part[0])
        shard = _shard(first)
        yield OutboxItem(
            shard_pk(first["tenant_id"], shard),
            f"CO#{first['id']}",
            body=f"[{','.join(part)}]",
            gsi1pk=f"{INDEX_PREFIX}{shard:02d}",
            gsi1sk=f"{first['at']}#{first['tenant_id']}#{first['id']}",
        )


def add(transaction: TransactWrite, messages: Sequence[Mapping[str, Any]]) -> None:
    """Write the messages in the transaction of the contact writes they announce."""
    for item in _items(messages):
        transaction.save(item)


class OutboxTable:
    """The ChangeOutbox port on DynamoDB."""

    def put(self, messages: Sequence[Mapping[str, Any]]) -> None:
        with OutboxItem.batch_write() as batch:
            for item in _items(messages):
                batch.save(item)

    def forget(self, written: Iterable[Sequence[Mapping[str, Any]]]) -> None:
        with OutboxItem.batch_write() as batch:
            for messages in written:
                for item in _items(messages):
                    batch.delete(item)

    def pending(self, before: str, limit: int = 100) -> list[list[dict[str, Any]]]:
        older = older_in_shard_index(OutboxItem, INDEX_PREFIX, before, page_size=limit)
        return [json.loads(item.body) for item in islice(older, limit)]
