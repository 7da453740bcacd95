"""SES's delivery, open and click events, read into what they change: the campaign recipient's record and
counters, and a contact event (``email.delivered``, ``email.opened``, ``email.clicked``) usable in criteria.

An SES event is identified by its message id, its type, its timestamp and, for a click, the link — never by
the SQS message that carried it — so a notification delivered twice, or a copy SES published twice, counts
once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain.clock import stored_moment, to_rfc3339
from chalicelib.domain.errors import AppError
from chalicelib.domain.events import MAX_PROPERTY_TEXT, check_event

KINDS = {"Delivery": "delivered", "Open": "opened", "Click": "clicked"}
"""SES event type → what it says of a recipient (and the contact event ``email.<kind>``)."""
TOTALS = {"opened": "opens", "clicked": "clicks"}
"""Kinds also counted every time (a recipient may open a mail many times), beside the unique count."""


@dataclass(frozen=True)
class RecipientEvent:
    """What a delivery, open or click changes of a campaign: its recipient's ``{kind}_at``, its counters."""

    contact_id: str
    kind: str  # delivered, opened or clicked
    key: str  # the SES event's identity: counted once
    at: str  # RFC 3339
    variant: str | None = None  # the A/B test variant the recipient got


@dataclass(frozen=True)
class MailEvent:
    kind: str  # delivered, opened or clicked
    ses_type: str
    message_id: str
    at: str  # RFC 3339, as stored
    tags: dict[str, str]
    link: str | None = None

    @property
    def key(self) -> str:
        """The event's identity: message id, type, timestamp and link."""
        text = "|".join((self.message_id, self.ses_type, self.at, self.link or ""))
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    @property
    def contact_id(self) -> str | None:
        return self.tags.get("contact_id")

    @property
    def recipient_event(self) -> RecipientEvent | None:
        """Its effect on the campaign that sent it (None when no campaign's recipient got it)."""
        if not self.tags.get("campaign_id") or not self.contact_id:
            return None
        return RecipientEvent(self.contact_id, self.kind, self.key, self.at, self.tags.get("variant"))

    @property
    def source(self) -> dict[str, str]:
        """What sent the mail: ``{"campaign_id": …}`` or ``{"trigger_id": …}`` (empty for a test send)."""
        return {name: self.tags[name] for name in ("campaign_id", "trigger_id") if self.tags.get(name)}


def ses_tags(event: dict[str, Any]) -> dict[str, str]:
    """The message tags the mail was sent with (tenant_id, campaign_id or trigger_id, contact_id), as SES
    echoes them in every event (each a list of one value)."""
    return {name: values[0] for name, values in ((event.get("mail") or {}).get("tags") or {}).items() if values}


def read_ses_event(event: dict[str, Any]) -> MailEvent | None:
    """A delivery, open or click, or None for any other event (or one without a readable time)."""
    ses_type = str(event.get("eventType") or event.get("notificationType") or "")
    kind = KINDS.get(ses_type)
    if kind is None:
        return None
    detail = event.get(ses_type.lower()) or {}
    moment = stored_moment(detail.get("timestamp"))
    mail = event.get("mail") or {}
    if moment is None or not mail.get("messageId"):
        return None
    link = detail.get("link") if kind == "clicked" else None
    return MailEvent(kind, ses_type, str(mail["messageId"]), to_rfc3339(moment), ses_tags(event), link)


def contact_event(mail_event: MailEvent, now: datetime) -> dict[str, Any] | None:
    """The contact event this mail event is (its id derived from the event's identity), or None when it
    cannot be one (older than the event retention, say)."""
    properties: dict[str, Any] = dict(mail_event.source)
    if mail_event.link:
        properties["link"] = mail_event.link[:MAX_PROPERTY_TEXT]
    raw = {"id": f"ses-{mail_event.key}", "type": f"email.{mail_event.kind}", "at": mail_event.at}
    try:
        return check_event({**raw, "properties": properties}, now, "event")
    except AppError:
        return None
