"""Scheduled handlers (EventBridge in AWS, infra/local/scheduler.py locally)."""

from __future__ import annotations

from chalice import Blueprint, Rate

from chalicelib.composition import due_campaigns, relay_outboxes, tenant_context, time_dependent_segments
from chalicelib.logs import logger
from chalicelib.services import campaigns, segments

blueprint = Blueprint(__name__)


@blueprint.schedule(Rate(1, unit=Rate.HOURS))
def refresh_time_dependent_segments(event) -> None:
    """Purchases age out of windows without any write: re-evaluate the segments time changes."""
    started = sum(
        segments.refresh_time_dependent(tenant_context(tenant_id), segment_ids)
        for tenant_id, segment_ids in time_dependent_segments().items()
    )
    logger.info("time-dependent segments refreshed", extra={"evaluations_started": started})


@blueprint.schedule(Rate(1, unit=Rate.MINUTES))
def start_due_campaigns(event) -> None:
    """Campaigns scheduled with ``send_at`` start sending when it comes."""
    started = campaigns.start_due(due_campaigns, tenant_context)
    if started:
        logger.info("scheduled campaigns started", extra={"campaigns_started": started})


@blueprint.schedule(Rate(1, unit=Rate.MINUTES))
def relay_contact_changes(event) -> None:
    """Change messages and segment transitions written to an outbox but not queued (SQS refused, the process
    stopped): they go out within a minute or two."""
    relay_outboxes()
