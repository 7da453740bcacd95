"""The main DynamoDB table: one table, many item types, every key tenant-first.

Key layout (pk / sk):

| item | pk | sk |
| --- | --- | --- |
| tenant | ``TENANT#{tenant}`` | ``#TENANT`` |
| API key (listing) | ``TENANT#{tenant}`` | ``APIKEY#{key_id}`` |
| API key (lookup by hash) | ``APIKEY#{sha256}`` | ``#APIKEY`` |

The one cross-tenant key is the key-hash lookup, which is how a request finds
its tenant; it holds no tenant data. ``gsi1`` serves secondary listings
(``gsi1pk`` / ``gsi1sk``), also tenant-first except the operator's tenant list.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.concurrency import each_at_once
from chalicelib.domain.contacts import SHARDS
from chalicelib.resources import MAIN_TABLE


def cancellation_reasons(error: TransactWriteError) -> list[str | None]:
    """Why each operation of a cancelled transaction failed (``ConditionalCheckFailed``, ``TransactionConflict``…)."""
    reasons = getattr(error, "cancellation_reasons", None) or []
    return [reason.code if reason else None for reason in reasons]


def shard_pk(tenant_id: str, shard: int) -> str:
    """The partition of one contact shard: its contacts, their events, stamps and outboxes."""
    return f"TENANT#{tenant_id}#SHARD#{shard:02d}"


def older_in_shard_index(model: Any, prefix: str, before: str, page_size: int) -> Iterator[Any]:
    """Items of a sparse gsi1 index kept in one partition per shard number (``{prefix}{nn}``, so no single
    index partition takes every write) whose sort key sorts before ``before``, shard by shard and oldest
    first within a shard; read lazily, ``page_size`` items a request (the outbox relays)."""
    for shard in range(SHARDS):
        yield from model.gsi1.query(f"{prefix}{shard:02d}", model.gsi1sk < before, page_size=page_size)


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class Gsi1(GlobalSecondaryIndex):
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class MainTableModel(Model):
    """Base for every item type stored in the main table."""

    class Meta:
        table_name = MAIN_TABLE
        region = region()

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    @classmethod
    def _get_connection(cls):
        """One connection per item type. PynamoDB caches it on the class, so a subclass used after the base
        inherited the base's, whose schema lacks the subclass's indexes (``gsi1`` queries then failed
        with "Table has no index", depending on which item type a process touched first)."""
        if "_connection" not in cls.__dict__:
            cls._connection = None
        table = super()._get_connection()
        if table.connection._client is None:  # one botocore client for every item type: see connection()
            table.connection._client = connection().client
        return table


@lru_cache(maxsize=1)
def connection() -> Connection:
    """The process's low-level connection for transactions across item types.

    Kept for the process's life: building one creates a botocore client, which
    parses the service model (tens of milliseconds). Every item type's connection shares its client
    (a client names no table), so a cold process parses the model once, not once per item type.
    """
    return Connection(region=region())


WRITE_BATCH = 25
"""DynamoDB's largest BatchWriteItem."""


def put_all(items: Sequence[MainTableModel]) -> None:
    """Put ``items`` (of one item type) in batch writes of 25, a few at once (chalicelib/concurrency.py); each
    batch retries what DynamoDB leaves unprocessed, as PynamoDB's batch writer does."""

    def put_batch(batch: Sequence[MainTableModel]) -> None:
        with type(batch[0]).batch_write() as writer:
            for item in batch:
                writer.save(item)

    each_at_once(put_batch, [items[i : i + WRITE_BATCH] for i in range(0, len(items), WRITE_BATCH)])


class AppliedEventItem(MainTableModel):
    """An event already applied (a counted transition, an SES event): written in the same transaction as what
    it applies, so a redelivery finds it; DynamoDB's TTL removes it after a few days."""

    expires_at = NumberAttribute()


def apply_once(pk: str, sk: str, kept_seconds: int, writes: Callable[[TransactWrite], None]) -> bool:
    """``writes`` in one transaction with the marker ``(pk, sk)``, which must not exist yet; False when it did
    (the event was applied before). Conflicts and throttling raise, so the caller's message is retried."""
    marker = AppliedEventItem(pk, sk, expires_at=int(time.time()) + kept_seconds)
    try:
        with TransactWrite(connection=connection()) as transaction:
            transaction.save(marker, condition=AppliedEventItem.sk.does_not_exist())
            writes(transaction)
    except TransactWriteError as error:
        if "ConditionalCheckFailed" not in cancellation_reasons(error):
            raise
        return False
    return True
