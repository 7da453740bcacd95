"""The webhooks queue: one delivery attempt per message (services/webhooks.py queues the retries itself)."""

from __future__ import annotations

from chalice import Blueprint
from chalice.app import SQSEvent

from chalicelib.composition import tenant_context
from chalicelib.handlers.batch import process_records
from chalicelib.logs import logger
from chalicelib.resources import WEBHOOKS_QUEUE
from chalicelib.services import webhooks

blueprint = Blueprint(__name__)


@blueprint.on_sqs_message(queue=WEBHOOKS_QUEUE, batch_size=10)
def deliver_webhooks(event: SQSEvent) -> dict:
    def handle(message: dict, record) -> None:
        logger.thread_safe_append_keys(tenant_id=message["tenant_id"], webhook_id=message["webhook_id"])
        webhooks.deliver(tenant_context(message["tenant_id"]), message)

    return process_records(event, WEBHOOKS_QUEUE, handle)
