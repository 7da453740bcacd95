"""Queue handlers for campaign sends and for SES's bounce and complaint notifications."""

from __future__ import annotations

from chalice import Blueprint
from chalice.app import SQSEvent

from chalicelib import metrics
from chalicelib.composition import tenant_context
from chalicelib.handlers.batch import process_records
from chalicelib.logs import logger
from chalicelib.resources import SEND_DEAD_LETTER_QUEUE, SEND_QUEUE, SES_EVENTS_QUEUE
from chalicelib.services import sending, suppressions

blueprint = Blueprint(__name__)


@blueprint.on_sqs_message(queue=SEND_QUEUE, batch_size=5)
def send_campaign_messages(event: SQSEvent) -> dict:
    def handle(message: dict, record) -> None:
        logger.thread_safe_append_keys(tenant_id=message["tenant_id"], campaign_id=message["campaign_id"])
        if message["kind"] == "audience":
            sending.build_audience(tenant_context(message["tenant_id"]), message["campaign_id"], message["shard"])
        elif message["kind"] == "ab_decide":
            sending.decide_winner(tenant_context(message["tenant_id"]), message["campaign_id"])
        else:
            result = sending.send_batch(tenant_context(message["tenant_id"]), message, record.message_id)
            logger.info(
                "batch processed", extra={"batch": message["batch"], "sent": result.sent, "requeued": result.requeued}
            )
            metrics.count(EmailsSent=result.sent)

    return process_records(event, SEND_QUEUE, handle)


@blueprint.on_sqs_message(queue=SEND_DEAD_LETTER_QUEUE, batch_size=10)
def fail_dead_send_messages(event: SQSEvent) -> dict:
    """A send message that failed every retry: its recipients are marked failed (or the campaign, for an audience)."""

    def handle(message: dict, record) -> None:
        logger.thread_safe_append_keys(tenant_id=message["tenant_id"], campaign_id=message["campaign_id"])
        sending.fail_batch(tenant_context(message["tenant_id"]), message, record.message_id)

    return process_records(event, SEND_DEAD_LETTER_QUEUE, handle)


@blueprint.on_sqs_message(queue=SES_EVENTS_QUEUE, batch_size=100, maximum_batching_window_in_seconds=1)
def apply_ses_notifications(event: SQSEvent) -> dict:
    """Deliveries, opens and clicks come by the thousand after a campaign: a batch's are applied together first;
    bounces, complaints, and whatever that could not apply, one by one."""
    applied: set[str] = set()

    def prepare(messages: list[dict]) -> None:
        suppressions.apply_mail_events_together(tenant_context, messages, applied)

    def handle(message: dict, record) -> None:
        if suppressions.notification_text(message) not in applied:
            suppressions.apply_ses_notification(tenant_context, message)

    return process_records(event, SES_EVENTS_QUEUE, handle, prepare)
