"""Reading and delivering queue messages in tests, the way Lambda would."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import sqs_backends

from chalicelib.resources import CONTACT_CHANGES_BULK_QUEUE, CONTACT_CHANGES_QUEUE
from infra.local.dispatcher import Dispatcher


def take_messages(queue_name: str, tenant_id: str | None = None) -> list[dict[str, Any]]:
    """Take everything a queue holds that a receive would return (visible, not delayed), as ReceiveMessage and
    DeleteMessageBatch would, but from the in-process moto the integration tests run on: ten at a time over
    botocore, the 10,000-contact tests spent a quarter of their time reading their queues back. Return the
    JSON bodies (of one tenant, if given)."""
    region = boto3.session.Session().region_name
    queue = sqs_backends[DEFAULT_ACCOUNT_ID][region].get_queue(queue_name)
    visible = list(queue.messages)
    taken = {id(message) for message in visible}
    queue._messages = [message for message in queue._messages if id(message) not in taken]
    bodies = [json.loads(message.body) for message in visible]
    return [b for b in bodies if tenant_id is None or b.get("tenant_id") == tenant_id]


def take_changes(tenant_id: str | None = None) -> list[dict[str, Any]]:
    """Every contact-changed message queued, on either queue (services/changes.queue_for)."""
    return take_messages(CONTACT_CHANGES_QUEUE, tenant_id) + take_messages(CONTACT_CHANGES_BULK_QUEUE, tenant_id)


def sqs_event(bodies: list[dict[str, Any]], queue_name: str) -> dict[str, Any]:
    """A real-shaped SQS event; every record gets its own messageId."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": str(uuid.uuid4()),
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue_name}",
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def deliver(
    app: Any,
    handler: str,
    queue_name: str,
    bodies: list[dict[str, Any]],
    *,
    times: int = 1,
    batch_size: int = 5,
    seed: int = 7,
) -> list[str]:
    """Deliver every body ``times`` times, shuffled, in batches; return the ids of failed records."""
    copies = [body for body in bodies for _ in range(times)]
    random.Random(seed).shuffle(copies)
    failed: list[str] = []
    for start in range(0, len(copies), batch_size):
        event = sqs_event(copies[start : start + batch_size], queue_name)
        result = app.handler_map[handler](event, None) or {}
        failed += [f["itemIdentifier"] for f in result.get("batchItemFailures", [])]
    return failed


def drain(app: Any, *queue_names: str) -> int:
    """Run every subscribed queue (or just the named ones) until empty, like the local runtime does."""
    return Dispatcher(app, wait_seconds=0).drain(queue_names=frozenset(queue_names) if queue_names else None)
