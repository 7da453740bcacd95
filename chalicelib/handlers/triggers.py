"""Queue and schedule handlers of triggers: membership events, run batches (and their dead letters), due schedules."""

from __future__ import annotations

from chalice import Blueprint, Rate
from chalice.app import SQSEvent

from chalicelib.composition import TenantContexts, due_triggers, tenant_context
from chalicelib.handlers.batch import process_records
from chalicelib.logs import logger
from chalicelib.resources import MEMBERSHIP_EVENTS_QUEUE, TRIGGER_RUNS_DEAD_LETTER_QUEUE, TRIGGER_RUNS_QUEUE
from chalicelib.services import journey_flow, segment_history, trigger_firing, trigger_runs, webhooks

blueprint = Blueprint(__name__)


@blueprint.on_sqs_message(queue=MEMBERSHIP_EVENTS_QUEUE, batch_size=10)
def apply_membership_events(event: SQSEvent) -> dict:
    """segment.entered / segment.exited → the segment's size history, webhooks, the segment's triggers and the
    journeys it is the entry of."""
    contexts = TenantContexts()  # each tenant's segments and triggers read once for the whole batch

    def handle(message: dict, record) -> None:
        logger.thread_safe_append_keys(tenant_id=message["tenant_id"], segment_id=message["segment_id"])
        segment_history.on_membership_event(contexts.of(message["tenant_id"]), message)
        webhooks.membership_changed(contexts.of(message["tenant_id"]), message)
        trigger_firing.on_membership_event(contexts.of(message["tenant_id"]), message)
        journey_flow.on_membership_event(contexts.of(message["tenant_id"]), message)

    return process_records(event, MEMBERSHIP_EVENTS_QUEUE, handle)


@blueprint.on_sqs_message(queue=TRIGGER_RUNS_QUEUE, batch_size=1)
def run_trigger_batches(event: SQSEvent) -> dict:
    def handle(message: dict, record) -> None:
        logger.thread_safe_append_keys(tenant_id=message["tenant_id"], trigger_id=message["trigger_id"])
        counts = trigger_runs.run_batch(tenant_context(message["tenant_id"]), message)
        logger.info("trigger batch done", extra={"run_id": message["run_id"], "batch": message["batch"], **counts})

    return process_records(event, TRIGGER_RUNS_QUEUE, handle)


@blueprint.on_sqs_message(queue=TRIGGER_RUNS_DEAD_LETTER_QUEUE, batch_size=10)
def fail_dead_trigger_batches(event: SQSEvent) -> dict:
    """A batch that failed every retry: its contacts count as failures, so the run still finishes."""

    def handle(message: dict, record) -> None:
        logger.thread_safe_append_keys(tenant_id=message["tenant_id"], trigger_id=message["trigger_id"])
        trigger_runs.fail_batch(tenant_context(message["tenant_id"]), message)

    return process_records(event, TRIGGER_RUNS_DEAD_LETTER_QUEUE, handle)


@blueprint.schedule(Rate(1, unit=Rate.MINUTES))
def start_due_triggers(event) -> None:
    """Schedule triggers (``rate(…)`` / ``cron(…)``) start a run when their time comes."""
    started = trigger_runs.start_due(due_triggers, tenant_context)
    if started:
        logger.info("scheduled triggers started", extra={"triggers_started": started})
