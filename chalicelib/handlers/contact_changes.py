"""Queue handler for "contact changed" messages: real-time segment membership, challenge rewards, and the
contact.created / tag.added / event.received triggers."""

from __future__ import annotations

from chalice import Blueprint
from chalice.app import SQSEvent

from chalicelib.composition import TenantContexts
from chalicelib.handlers.batch import process_records
from chalicelib.logs import logger
from chalicelib.resources import CONTACT_CHANGES_QUEUE
from chalicelib.services import engagements, membership, triggers

blueprint = Blueprint(__name__)


@blueprint.on_sqs_message(queue=CONTACT_CHANGES_QUEUE, batch_size=10)
def apply_contact_changes(event: SQSEvent) -> dict:
    contexts = TenantContexts()  # each tenant's segments read and compiled once for the whole batch

    def handle(message: dict, record) -> None:
        ctx = contexts.of(message["tenant_id"])
        logger.thread_safe_append_keys(tenant_id=message["tenant_id"], contact_id=message["contact_id"])
        cause = {
            "change": message["change"],
            "source": message.get("source", "api"),
            "version": message["version"],
            "depth": message.get("depth", 0),
        }
        membership.update_contact(ctx, message["contact_id"], cause)
        if message["change"] != "deleted":  # events move a goal; tags or attributes may move a segment
            engagements.award_challenges(ctx, message["contact_id"])
            triggers.on_contact_change(ctx, message)

    return process_records(event, CONTACT_CHANGES_QUEUE, handle)
