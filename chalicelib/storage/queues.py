"""Sending to the service's SQS queues (names from chalicelib.resources)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import boto3

from chalicelib.concurrency import each_at_once
from chalicelib.ports.queues import SendFailed

_lock = threading.Lock()
_client: Any = None
_urls: dict[str, str] = {}
SQS_BATCH = 10


def _sqs() -> Any:
    global _client
    with _lock:
        if _client is None:
            _client = boto3.client("sqs")
        return _client


def queue_url(name: str) -> str:
    if name not in _urls:
        _urls[name] = _sqs().get_queue_url(QueueName=name)["QueueUrl"]
    return _urls[name]


def send_messages(queue_name: str, messages: Iterable[Mapping[str, Any]], delay_seconds: int = 0) -> int:
    """Send JSON messages in batches of ten, a few batches at once (chalicelib/concurrency.py), each delayed
    ``delay_seconds`` (at most 900); raise SendFailed if any could not be queued (every batch is tried)."""
    url = queue_url(queue_name)
    bodies = list(messages)

    def send_batch(batch: list[Mapping[str, Any]]) -> None:
        entries: list[dict[str, Any]] = [
            {"Id": str(i), "MessageBody": json.dumps(body, separators=(",", ":"))} for i, body in enumerate(batch)
        ]
        if delay_seconds:
            for entry in entries:
                entry["DelaySeconds"] = min(900, delay_seconds)
        response = _sqs().send_message_batch(QueueUrl=url, Entries=entries)
        if response.get("Failed"):
            retry = [entries[int(f["Id"])] for f in response["Failed"]]
            again = _sqs().send_message_batch(QueueUrl=url, Entries=retry)
            if again.get("Failed"):
                raise SendFailed(f"{len(again['Failed'])} messages could not be queued on {queue_name}")

    each_at_once(send_batch, [bodies[i : i + SQS_BATCH] for i in range(0, len(bodies), SQS_BATCH)])
    return len(bodies)


class SqsQueues:
    """The MessageQueues port on SQS."""

    def send(self, queue_name: str, messages: Iterable[Mapping[str, Any]], delay_seconds: int = 0) -> int:
        return send_messages(queue_name, messages, delay_seconds=delay_seconds)
