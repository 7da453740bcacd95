"""What SES tells of a sent mail after it left: delivered, opened, clicked. Each becomes the campaign
recipient's state and the campaign's counters (when a campaign sent it), and a contact event
(``email.delivered``, ``email.opened``, ``email.clicked`` with ``campaign_id`` or ``trigger_id`` and, for a
click, ``link``) that criteria, triggers and challenges read like any other. Idempotent: the event's identity
(domain/mail_events.py) decides what was counted, and the contact event's id derives from it."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.clock import Clock, system_clock
from chalicelib.domain.contacts import ordinal_of
from chalicelib.domain.mail_events import MailEvent, RecipientEvent, contact_event
from chalicelib.logs import logger
from chalicelib.services import webhooks
from chalicelib.services.contacts import record_events
from chalicelib.services.context import TenantContext


def apply(ctx: TenantContext, mail_events: list[MailEvent], clock: Clock = system_clock) -> None:
    """A tenant's deliveries, opens and clicks, together (a queue batch's): each campaign's counters and
    recipients in a few writes, the contact events as one bulk write. Events without a contact (a test send's)
    count nothing."""
    known = [event for event in mail_events if event.contact_id and ordinal_of(event.contact_id) is not None]
    if len(known) < len(mail_events):
        logger.info("SES events without a contact ignored", extra={"count": len(mail_events) - len(known)})
    per_campaign: dict[str, list[RecipientEvent]] = {}
    for event in known:
        if event.recipient_event is not None:
            per_campaign.setdefault(event.tags["campaign_id"], []).append(event.recipient_event)
    for campaign_id, engagements in per_campaign.items():
        ctx.ports.sends.record_engagements(campaign_id, engagements)
    now = clock()
    per_contact: dict[str, dict[str, dict[str, Any]]] = {}  # an event twice in the batch is stored once
    for event in known:
        checked = contact_event(event, now)
        if checked is not None and event.contact_id:
            per_contact.setdefault(event.contact_id, {})[checked["id"]] = checked
    record_events(ctx, {contact_id: list(events.values()) for contact_id, events in per_contact.items()})
    reported = {
        event["id"]: (event["id"], event["type"], event["at"], {"contact_id": contact_id, **event["properties"]})
        for contact_id, events in per_contact.items()
        for event in events.values()
    }
    webhooks.mail_events(ctx, list(reported.values()))
    logger.info("SES events applied", extra={"count": len(known), "campaigns": sorted(per_campaign)})
