"""Queue handlers for "contact changed" messages: each goes to services/reactions.py, which brings a contact
up to date once per batch however many of its messages the batch holds; each tenant's context is made once
per batch.

Two event sources, one way of handling: a lone change (the interactive queue) is taken at once in batches
of up to 10, since Lambda gathers more only over a batching window a person would wait for; changes that
come many at once (the bulk queue, services/changes.py) are gathered up to 100 over a 1 s window."""

from __future__ import annotations

from chalice import Blueprint
from chalice.app import SQSEvent

from chalicelib.composition import TenantContexts
from chalicelib.handlers.batch import process_records
from chalicelib.logs import logger
from chalicelib.ports.messages import ContactChanged
from chalicelib.resources import CONTACT_CHANGES_BULK_QUEUE, CONTACT_CHANGES_QUEUE
from chalicelib.services import reactions

blueprint = Blueprint(__name__)


BULK_BATCH_SIZE = 100
BULK_BATCHING_WINDOW_SECONDS = 1


def _react(event: SQSEvent, queue: str) -> dict:
    batch = reactions.BatchReactions(TenantContexts().of)  # each tenant's segments read and compiled once

    def handle(change: ContactChanged, record) -> None:
        logger.thread_safe_append_keys(tenant_id=change["tenant_id"], contact_id=change["contact_id"])
        batch.react(change)

    return process_records(event, queue, handle, prepare=batch.prepare)


@blueprint.on_sqs_message(queue=CONTACT_CHANGES_QUEUE, batch_size=10)
def apply_contact_changes(event: SQSEvent) -> dict:
    return _react(event, CONTACT_CHANGES_QUEUE)


@blueprint.on_sqs_message(
    queue=CONTACT_CHANGES_BULK_QUEUE,
    batch_size=BULK_BATCH_SIZE,
    maximum_batching_window_in_seconds=BULK_BATCHING_WINDOW_SECONDS,
)
def apply_bulk_contact_changes(event: SQSEvent) -> dict:
    return _react(event, CONTACT_CHANGES_BULK_QUEUE)
