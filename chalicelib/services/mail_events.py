"""What SES tells of a sent mail after it left: delivered, opened, clicked. Each becomes the campaign
recipient's state and the campaign's counters (when a campaign sent it), and a contact event
(``email.delivered``, ``email.opened``, ``email.clicked`` with ``campaign_id`` or ``trigger_id`` and, for a
click, ``link``) that criteria, triggers and challenges read like any other. Idempotent: the event's identity
(domain/mail_events.py) decides what was counted, and the contact event's id derives from it."""

from __future__ import annotations

from chalicelib.domain.clock import Clock, system_clock
from chalicelib.domain.contacts import ordinal_of
from chalicelib.domain.mail_events import MailEvent, contact_event
from chalicelib.logs import logger
from chalicelib.services.contacts import record_events
from chalicelib.services.context import TenantContext


def apply(ctx: TenantContext, mail_event: MailEvent, clock: Clock = system_clock) -> None:
    contact_id = mail_event.tags.get("contact_id")
    campaign_id = mail_event.tags.get("campaign_id")
    if contact_id is None or ordinal_of(contact_id) is None:
        logger.info("SES event without a contact ignored", extra={"event_type": mail_event.ses_type})
        return
    if campaign_id:
        ctx.ports.sends.record_engagement(campaign_id, contact_id, mail_event.kind, mail_event.key, mail_event.at)
    event = contact_event(mail_event, clock())
    if event is not None:
        record_events(ctx, contact_id, [event])
    logger.info("SES event applied", extra={"event_type": mail_event.ses_type, **mail_event.source})
