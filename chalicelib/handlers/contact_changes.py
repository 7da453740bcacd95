"""Queue handler for "contact changed" messages: each goes to services/reactions.py, which brings a contact
up to date once per batch however many of its messages the batch holds; each tenant's context is made once
per batch."""

from __future__ import annotations

from chalice import Blueprint
from chalice.app import SQSEvent

from chalicelib.composition import TenantContexts
from chalicelib.handlers.batch import process_records
from chalicelib.logs import logger
from chalicelib.ports.messages import ContactChanged
from chalicelib.resources import CONTACT_CHANGES_QUEUE
from chalicelib.services import reactions

blueprint = Blueprint(__name__)


@blueprint.on_sqs_message(queue=CONTACT_CHANGES_QUEUE, batch_size=10)
def apply_contact_changes(event: SQSEvent) -> dict:
    batch = reactions.BatchReactions(TenantContexts().of)  # each tenant's segments read and compiled once

    def handle(change: ContactChanged, record) -> None:
        logger.thread_safe_append_keys(tenant_id=change["tenant_id"], contact_id=change["contact_id"])
        batch.react(change)

    return process_records(event, CONTACT_CHANGES_QUEUE, handle)
