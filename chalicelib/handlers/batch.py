"""Partial-batch SQS processing shared by every queue handler.

Each record is handled on its own; only the records that raised are reported
in ``batchItemFailures`` (so SQS retries just those, and moves them to the DLQ
after ``maxReceiveCount``). Powertools does the bookkeeping.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from chalice.app import SQSEvent

from chalicelib import metrics
from chalicelib.logs import logger
from chalicelib.ports.messages import parse


def process_records(
    event: SQSEvent,
    queue_name: str,
    handle: Callable[[Any, SQSRecord], None],
    prepare: Callable[[list[Any]], None] | None = None,
) -> dict[str, Any]:
    """Handle each record's message, checked against the shapes ``queue_name`` carries (ports/messages.py):
    a malformed one fails by itself, naming its fields, and reaches the dead-letter queue.

    ``prepare`` first gets every well-formed message of the batch at once (to read what they share together);
    if it fails, each record is still handled on its own."""
    if prepare is not None:
        _prepare(event, queue_name, prepare)

    def record_handler(record: SQSRecord) -> None:
        logger.thread_safe_clear_keys()  # keys of the previous record must not leak into this one
        logger.thread_safe_append_keys(
            message_id=record.message_id, receive_count=record.attributes.approximate_receive_count
        )
        try:
            handle(parse(queue_name, json.loads(record.body)), record)
        except Exception:
            logger.exception("record failed; SQS will retry it")
            raise

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    raw = event.to_dict()
    response = process_partial_response(
        event=raw, record_handler=record_handler, processor=processor, context=event.context
    )
    failed = len(response.get("batchItemFailures", []))
    records = len(raw.get("Records", []))
    handler = getattr(event.context, "function_name", None) or "unknown"
    metrics.count({"handler": handler}, RecordsHandled=records - failed, RecordsFailed=failed)
    return response


def _prepare(event: SQSEvent, queue_name: str, prepare: Callable[[list[Any]], None]) -> None:
    messages = []
    for record in event.to_dict().get("Records", []):
        try:
            messages.append(parse(queue_name, json.loads(record["body"])))
        except Exception:  # a malformed record fails on its own below
            continue
    try:
        prepare(messages)
    except Exception:
        logger.exception("preparing the batch failed; each record is handled on its own")
