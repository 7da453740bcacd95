"""The service's queues (names in chalicelib/resources.py), shared by every tenant."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol


class SendFailed(Exception):
    """Some messages could not be queued (after one retry)."""


class MessageQueues(Protocol):
    def send(self, queue_name: str, messages: Iterable[Mapping[str, Any]], delay_seconds: int = 0) -> int:
        """Queue JSON messages (each delayed ``delay_seconds``, at most 900); how many were sent.
        Raises SendFailed if any could not be queued."""
