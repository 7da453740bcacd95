"""Addresses never mailed: manual suppressions, unsubscribes (RFC 8058), SES bounces and complaints.

An unsubscribe link carries a sealed (encrypted, authenticated) token of (tenant, address, campaign);
anything else, or a token altered in any byte, is a 404 that says nothing more.
GET only shows a confirmation page (mail scanners follow links); POST
unsubscribes, idempotently. The API does not lift an unsubscribe (only the
person may take it back); bounces, complaints and manual entries can be lifted.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from chalicelib.config import get_config
from chalicelib.domain import campaigns as rules
from chalicelib.domain import tokens
from chalicelib.domain.campaigns import Suppression
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.emails import is_valid_email
from chalicelib.domain.errors import Conflict, NotFound, ValidationFailed
from chalicelib.domain.mail_events import MailEvent, read_ses_event, ses_tags
from chalicelib.domain.validation import validate
from chalicelib.logs import logger
from chalicelib.services import mail_events, webhooks
from chalicelib.services.context import TenantContext
from chalicelib.services.mail import INERT_UNSUBSCRIBE_PURPOSE, UNSUBSCRIBE_PURPOSE
from chalicelib.services.paging import page

REASONS = ("manual", "bounce", "complaint", "unsubscribed")
ADD_SUPPRESSION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["email"],
    "properties": {
        "email": {"type": "string", "maxLength": 254},
        "reason": {"type": "string", "enum": ["manual"]},
    },
}
SUPPRESSION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "email": {"type": "string"},
        "reason": {"type": "string", "enum": list(REASONS)},
        "created_at": {"type": "string"},
        "campaign_id": {"type": ["string", "null"]},
    },
}


def suppression_view(suppression: Suppression) -> dict[str, Any]:
    return {
        "email": suppression.email,
        "reason": suppression.reason,
        "created_at": suppression.created_at,
        "campaign_id": suppression.campaign_id,
    }


def _address(value: str, field: str) -> str:
    address = value.strip().lower()
    if not is_valid_email(address):
        raise ValidationFailed(field, f"{value!r} is not a valid email address.")
    return address


def list_suppressions(ctx: TenantContext, limit_: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = ctx.tenant_id
    return page(
        f"suppressions:{tenant_id}",
        cursor,
        lambda start: ctx.ports.suppressions.suppressions_page(limit_, start),
        suppression_view,
    )


def add_suppression(ctx: TenantContext, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, ADD_SUPPRESSION_SCHEMA)
    address = _address(body["email"], "email")
    ctx.ports.suppressions.suppress(Suppression(address, "manual", to_rfc3339(clock())))
    found = ctx.ports.suppressions.get_suppression(address)
    assert found is not None
    return suppression_view(found)


def remove_suppression(ctx: TenantContext, email: str) -> None:
    address = email.strip().lower()
    found = ctx.ports.suppressions.get_suppression(address)
    if found is None:
        raise NotFound(f"{address} is not suppressed.", {"field": "email"})
    if found.reason == "unsubscribed":
        raise Conflict(
            f"{address} unsubscribed; only they can subscribe again.", {"field": "email", "reason": found.reason}
        )
    ctx.ports.suppressions.unsuppress(address)


# --- unsubscribe links ---------------------------------------------------------------------------------


def _token_payload(token: str) -> tuple[dict[str, Any], bool]:
    """The link's payload, and whether it is an inert one (from a preview or a test send)."""
    secret = get_config().secret
    for purpose, inert in ((UNSUBSCRIBE_PURPOSE, False), (INERT_UNSUBSCRIBE_PURPOSE, True)):
        payload = tokens.unseal(token, purpose=purpose, secret=secret)
        if payload is not None and isinstance(payload.get("t"), str) and isinstance(payload.get("e"), str):
            return payload, inert
    raise NotFound("No such unsubscribe link.", {"field": "token"})


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto;">
<h1>{title}</h1><p>{message}</p>{form}
</body></html>"""
_INERT = "This link comes from a preview or a test message: it unsubscribes nobody."


def unsubscribe_page(token: str) -> str:
    """GET: a page asking to confirm; it changes nothing (link scanners fetch these)."""
    payload, inert = _token_payload(token)
    address = html.escape(payload["e"])
    form = (
        f'<form method="post" action="{html.escape(token)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    message = f"Stop emails to {address}?" + (f" ({_INERT})" if inert else "")
    return _PAGE.format(title="Unsubscribe", message=message, form=form)


def unsubscribe(context_for: Callable[[str], TenantContext], token: str, clock: Clock = system_clock) -> str:
    """POST (RFC 8058 one-click, or the page's button): suppress the address for the tenant, idempotently.
    An inert link answers the same way and changes nothing."""
    payload, inert = _token_payload(token)
    if inert:
        return _PAGE.format(title="Nothing changed", message=_INERT, form="")
    tenant_id, address = payload["t"], payload["e"]
    unsubscribed = Suppression(address, "unsubscribed", to_rfc3339(clock()), payload.get("c"))
    ctx = context_for(tenant_id)
    ctx.ports.suppressions.suppress(unsubscribed)
    webhooks.unsubscribed(ctx, address, payload.get("c"), unsubscribed.created_at)
    logger.info("unsubscribed", extra={"tenant_id": tenant_id, "campaign_id": payload.get("c")})
    return _PAGE.format(
        title="Unsubscribed", message=f"{html.escape(address)} will get no more emails from us.", form=""
    )


# --- SES feedback --------------------------------------------------------------------------------------


def notification_text(body: dict[str, Any]) -> str:
    """The SES event a notification carries, as text: two copies of one notification have the same."""
    return str(body["Message"]) if "Message" in body else json.dumps(body, sort_keys=True)


def apply_mail_events_together(
    context_for: Callable[[str], TenantContext],
    bodies: list[dict[str, Any]],
    applied: set[str],
    clock: Clock = system_clock,
) -> None:
    """The deliveries, opens and clicks among a batch's notifications, applied together tenant by tenant
    (services/mail_events.py); each tenant's notification texts go into ``applied`` once done, so the batch's
    handler skips them and handles the rest (and those of a tenant that failed) one by one."""
    by_tenant: dict[str, dict[str, MailEvent]] = {}
    for body in bodies:
        text = notification_text(body)
        event = json.loads(text)
        mail_event, tenant_id = read_ses_event(event), ses_tags(event).get("tenant_id")
        if mail_event is not None and tenant_id:
            by_tenant.setdefault(tenant_id, {})[text] = mail_event
    for tenant_id, found in by_tenant.items():
        mail_events.apply(context_for(tenant_id), list(found.values()), clock)
        applied.update(found)


def apply_ses_notification(
    context_for: Callable[[str], TenantContext], body: dict[str, Any], clock: Clock = system_clock
) -> None:
    """One SES event (through SNS): a permanent bounce or a complaint suppresses the address for the tenant
    named in the message's tags and marks the campaign recipient; a delivery, open or click is counted
    (services/mail_events.py); anything else is only logged."""
    event = json.loads(notification_text(body))
    kind = event.get("eventType") or event.get("notificationType")
    tags = ses_tags(event)
    tenant_id = tags.get("tenant_id")
    mail_event = read_ses_event(event)
    if mail_event is not None and tenant_id:
        mail_events.apply(context_for(tenant_id), [mail_event], clock)
        return
    if kind == "Bounce" and event.get("bounce", {}).get("bounceType") == "Permanent":
        addresses, reason, state = event["bounce"].get("bouncedRecipients", []), "bounce", rules.BOUNCED
    elif kind == "Complaint":
        addresses, reason, state = event["complaint"].get("complainedRecipients", []), "complaint", rules.COMPLAINED
    else:
        logger.info("SES event ignored", extra={"event_type": kind})
        return
    if not tenant_id:
        logger.warning("SES event without a tenant tag ignored", extra={"event_type": kind})
        return
    ctx = context_for(tenant_id)
    suppressions = ctx.ports.suppressions
    for recipient in addresses:
        address = recipient["emailAddress"].strip().lower()
        suppressions.suppress(Suppression(address, reason, to_rfc3339(clock()), tags.get("campaign_id")))
    if tags.get("campaign_id") and tags.get("contact_id"):
        ctx.ports.sends.mark_feedback(tags["campaign_id"], tags["contact_id"], state)
    logger.info(
        "SES feedback applied",
        extra={"tenant_id": tenant_id, "event_type": kind, "campaign_id": tags.get("campaign_id")},
    )
