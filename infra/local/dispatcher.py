"""What Lambda's SQS event source mappings do, for the local runtime.

For every ``@app.on_sqs_message`` the Chalice app registered, poll the queue,
call the handler with a real-shaped SQS event (the queue's unique message ids),
gathering batches as Lambda does — one receive of up to ``batch_size`` (at most 10)
without a batching window; with one, receives of 10 until ``batch_size`` records
(at most 10,000) are gathered or the window has passed since the first — and delete
only the records that succeeded: a
handler that raises fails the whole batch, a returned ``batchItemFailures``
fails only those records. Failed records become visible again after the
queue's visibility timeout and SQS moves them to the DLQ after
``maxReceiveCount``, exactly as deployed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import boto3
from chalice import Chalice
from chalice.app import SQSEventConfig
from chalice.local import LambdaContext

from chalicelib.logs import logger

LAMBDA_MAX_SQS_BATCH = 10
"""The largest batch without a batching window (Lambda refuses more; and one ReceiveMessage returns at most 10)."""
LAMBDA_MAX_WINDOWED_BATCH = 10_000


class UnsupportedEventSource(ValueError):
    """An event source Lambda would refuse: more than 10 records a batch without a batching window."""


@dataclass
class QueueSubscription:
    name: str
    queue_name: str
    queue_url: str
    queue_arn: str
    batch_size: int
    window_seconds: int = 0


def subscriptions(app: Chalice, sqs: Any | None = None) -> list[QueueSubscription]:
    """The queues the app subscribes to, from its registered event sources."""
    sqs = sqs or boto3.client("sqs")
    found = []
    for source in app.event_sources:
        if not isinstance(source, SQSEventConfig):
            continue
        queue_name = source.queue or source.queue_arn.rsplit(":", 1)[1]
        url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        window = int(source.maximum_batching_window_in_seconds or 0)
        if source.batch_size > (LAMBDA_MAX_WINDOWED_BATCH if window else LAMBDA_MAX_SQS_BATCH):
            raise UnsupportedEventSource(f"{source.name}: batch_size {source.batch_size} with a {window} s window")
        found.append(QueueSubscription(source.name, queue_name, url, arn, source.batch_size, window))
    return found


def _record(message: dict[str, Any], subscription: QueueSubscription, region: str) -> dict[str, Any]:
    attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": subscription.queue_arn,
        "awsRegion": region,
    }


class Dispatcher:
    def __init__(self, app: Chalice, sqs: Any | None = None, wait_seconds: int = 1) -> None:
        self.app = app
        self.sqs = sqs or boto3.client("sqs")
        self.region = self.sqs.meta.region_name
        self.wait_seconds = wait_seconds
        self.subscriptions = subscriptions(app, self.sqs)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _receive(self, subscription: QueueSubscription, wanted: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=subscription.queue_url,
            MaxNumberOfMessages=min(wanted, LAMBDA_MAX_SQS_BATCH),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _gather(self, subscription: QueueSubscription, wait_seconds: int) -> list[dict[str, Any]]:
        """One batch, as the event source mapping gathers it. ``drain`` (wait_seconds 0) does not sit out the
        window once the queue is empty: it has nothing more to wait for."""
        messages = self._receive(subscription, subscription.batch_size, wait_seconds)
        if not messages or not subscription.window_seconds:
            return messages
        closes = time.monotonic() + subscription.window_seconds
        while len(messages) < subscription.batch_size and time.monotonic() < closes:
            more = self._receive(subscription, subscription.batch_size - len(messages), 0)
            if not more and wait_seconds == 0:
                break
            messages += more
            if not more:
                self._stop.wait(0.05)
        return messages

    def poll_once(self, subscription: QueueSubscription, wait_seconds: int | None = None) -> int:
        """Receive one batch and deliver it; return how many records were delivered."""
        messages = self._gather(subscription, self.wait_seconds if wait_seconds is None else wait_seconds)
        if not messages:
            return 0
        event = {"Records": [_record(message, subscription, self.region) for message in messages]}
        failed = self._invoke(subscription, event)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=subscription.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )
        return len(messages)

    def _invoke(self, subscription: QueueSubscription, event: dict[str, Any]) -> set[str]:
        """Call the handler; return the ids of records that failed."""
        every_id = {record["messageId"] for record in event["Records"]}
        context = LambdaContext(function_name=subscription.name, memory_size=1024, max_runtime_ms=900_000)
        try:
            result = self.app.handler_map[subscription.name](event, context)
        except Exception:
            logger.exception("queue handler failed; batch will be retried", extra={"queue": subscription.queue_name})
            return every_id
        failures = (result or {}).get("batchItemFailures", []) if isinstance(result, dict) else []
        return {failure["itemIdentifier"] for failure in failures} & every_id

    def drain(self, max_rounds: int = 10_000, queue_names: frozenset[str] | None = None) -> int:
        """Deliver until every subscribed queue (or each of ``queue_names``) is empty (tests and benchmarks)."""
        chosen = [s for s in self.subscriptions if queue_names is None or s.queue_name in queue_names]
        delivered = 0
        for _ in range(max_rounds):
            round_total = sum(self.poll_once(s, wait_seconds=0) for s in chosen)
            delivered += round_total
            if round_total == 0:
                return delivered
        return delivered

    def start(self, pollers_per_queue: int = 2) -> None:
        for subscription in self.subscriptions:
            for index in range(pollers_per_queue):
                thread = threading.Thread(
                    target=self._loop, args=(subscription,), name=f"sqs-{subscription.name}-{index}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _loop(self, subscription: QueueSubscription) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once(subscription)
            except Exception:
                if self._stop.is_set():
                    return
                logger.exception("polling failed", extra={"queue": subscription.queue_name})
                time.sleep(1)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.wait_seconds + 5)
