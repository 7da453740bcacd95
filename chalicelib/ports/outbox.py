"""The contact-change outbox: change messages waiting to be queued (services/changes.py).

A contact write puts its messages here in the same transaction (ContactRepository.write); the request
queues them right after and forgets them; the minute relay queues whatever a request could not. The
messages of one write are kept, and forgotten, together. They name their tenant, so the outbox, like the
queues, is one for every tenant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol


class ChangeOutbox(Protocol):
    def put(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Keep messages together, before a write that cannot share a transaction with them (event appends)."""

    def forget(self, written: Iterable[Sequence[Mapping[str, Any]]]) -> None:
        """Drop messages once queued, each group exactly as it was written or put (unknown ones are ignored)."""

    def pending(self, before: str, limit: int = 100) -> list[list[dict[str, Any]]]:
        """Up to ``limit`` groups of messages written before ``before`` (RFC 3339) and not forgotten, oldest first
        per shard, each as it is to be forgotten."""
