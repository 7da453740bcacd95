"""Driving the segment lifecycle on in-memory ports (tests/support/fakes.py) in unit tests."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.domain.clock import system_clock, to_rfc3339
from chalicelib.domain.contacts import Contact, contact_id_for
from chalicelib.domain.segments import draft_from
from chalicelib.resources import CONTACT_CHANGES_BULK_QUEUE, CONTACT_CHANGES_QUEUE, JOBS_QUEUE
from chalicelib.services import jobs, segments
from chalicelib.services.context import TenantContext


def put(ctx: TenantContext, ordinal: int, *tags: str, city: str | None = None, bought_days_ago: float | None = None):
    """A contact in the fake (and, with ``bought_days_ago``, a purchase)."""
    contact = Contact(
        id=contact_id_for(ordinal),
        ordinal=ordinal,
        external_id=f"p-{ordinal}",
        email=f"p{ordinal}@example.com",
        tags=frozenset(tags),
        attributes={"city": city} if city else {},
    )
    at = to_rfc3339(system_clock() - timedelta(days=bought_days_ago)) if bought_days_ago is not None else None
    events = [{"id": f"evt_{ordinal}", "type": "purchase", "at": at, "amount": 10}] if at else []
    ctx.ports.contacts.put(contact, events)


def take_changes(ctx: TenantContext) -> list[dict]:
    """The contact-changed messages queued so far, on either queue (services/changes.queue_for)."""
    return ctx.ports.queues.take(CONTACT_CHANGES_QUEUE) + ctx.ports.queues.take(CONTACT_CHANGES_BULK_QUEUE)


def run_jobs(ctx: TenantContext) -> None:
    """Deliver every queued job chunk (twice: redelivery changes nothing)."""
    messages = ctx.ports.queues.take(JOBS_QUEUE)
    for message in messages + messages:
        jobs.run_chunk(ctx, message)


def create(ctx: TenantContext, criteria: dict, name: str = "S") -> dict:
    return segments.create_segment(ctx, draft_from({"name": name, "criteria": criteria}))


def members(ctx: TenantContext, segment_id: str) -> list[str]:
    return [c["external_id"] for c in segments.members(ctx, segment_id, 100, None)["items"]]
