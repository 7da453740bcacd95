"""Queue and schedule handlers of journeys: wake-ups of waits that are over and entries of scheduled runs,
and the minute schedule that queues both (the due-time index, the scheduled journeys)."""

from __future__ import annotations

from chalice import Blueprint, Rate
from chalice.app import SQSEvent

from chalicelib.composition import TenantContexts, due_journeys, scheduled_journeys
from chalicelib.domain.clock import system_clock, to_rfc3339
from chalicelib.handlers.batch import process_records
from chalicelib.logs import logger
from chalicelib.ports.messages import JourneyEnter, JourneyWake
from chalicelib.resources import JOURNEYS_QUEUE
from chalicelib.services import journey_flow

blueprint = Blueprint(__name__)


@blueprint.on_sqs_message(queue=JOURNEYS_QUEUE, batch_size=10)
def wake_journeys(event: SQSEvent) -> dict:
    contexts = TenantContexts()

    def handle(message: JourneyWake | JourneyEnter, record) -> None:
        logger.thread_safe_append_keys(tenant_id=message["tenant_id"], journey_id=message["journey_id"])
        moved = journey_flow.handle(contexts.of(message["tenant_id"]), message)
        logger.info(message["kind"], extra={"contacts": len(message["contacts"]), "moved_on": moved})

    return process_records(event, JOURNEYS_QUEUE, handle)


@blueprint.schedule(Rate(1, unit=Rate.MINUTES))
def wake_due_journeys(event) -> None:
    """Scheduled runs that are due queue their entrants; waits that are over (the due-time index) become wake
    messages."""
    contexts, now = TenantContexts(), to_rfc3339(system_clock())
    started = journey_flow.enter_scheduled(scheduled_journeys(now), contexts.of)
    queued = journey_flow.wake_due(due_journeys(now), contexts.of)
    if queued or started:
        logger.info("journey wake-ups queued", extra={"messages": queued, "runs_started": started})
