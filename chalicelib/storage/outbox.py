"""The contact-change outbox: a change message is written in the same transaction as the contact write it
announces, queued right after, and deleted once queued.

| item | pk | sk | gsi1pk / gsi1sk |
| --- | --- | --- | --- |
| change not yet queued | ``TENANT#{t}#SHARD#{nn}`` | ``CO#{id}`` | ``OUTBOX#{nn}`` / ``{at}#{tenant}#{id}`` |

If SQS refuses (or the process stops) between the write and the queue, the item stays, and the minute
relay (services/changes.relay_pending) finds it through the sparse ``OUTBOX#{nn}`` index partitions (one per
shard number, so no single index partition takes every write) and queues it. A message may then be
queued twice; consumers re-read the contact, so that is harmless, and nothing is lost.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

from pynamodb.attributes import UnicodeAttribute
from pynamodb.transactions import TransactWrite

from chalicelib.domain.contacts import ordinal_of, shard_of
from chalicelib.storage.table import Gsi1, MainTableModel, older_in_shard_index, shard_pk

INDEX_PREFIX = "OUTBOX#"


class OutboxItem(MainTableModel):
    body = UnicodeAttribute()
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    gsi1 = Gsi1()


def _shard(message: Mapping[str, Any]) -> int:
    ordinal = ordinal_of(message["contact_id"])
    assert ordinal is not None  # messages name contacts that were written
    return shard_of(ordinal)


def _item(message: Mapping[str, Any]) -> OutboxItem:
    shard = _shard(message)
    return OutboxItem(
        shard_pk(message["tenant_id"], shard),
        f"CO#{message['id']}",
        body=json.dumps(message, separators=(",", ":")),
        gsi1pk=f"{INDEX_PREFIX}{shard:02d}",
        gsi1sk=f"{message['at']}#{message['tenant_id']}#{message['id']}",
    )


def add(transaction: TransactWrite, messages: Iterable[Mapping[str, Any]]) -> None:
    """Write the messages in the transaction of the contact writes they announce."""
    for message in messages:
        transaction.save(_item(message))


class OutboxTable:
    """The ChangeOutbox port on DynamoDB."""

    def put(self, messages: Iterable[Mapping[str, Any]]) -> None:
        with OutboxItem.batch_write() as batch:
            for message in messages:
                batch.save(_item(message))

    def forget(self, messages: Iterable[Mapping[str, Any]]) -> None:
        with OutboxItem.batch_write() as batch:
            for message in messages:
                batch.delete(_item(message))

    def pending(self, before: str, limit: int = 500) -> list[dict[str, Any]]:
        older = older_in_shard_index(OutboxItem, INDEX_PREFIX, before, page_size=limit)
        return [json.loads(item.body) for item in islice(older, limit)]
