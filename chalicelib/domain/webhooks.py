"""Outbound webhooks: what may be registered, who hears what, how a delivery is signed, retried, and when an
endpoint that keeps failing is switched off. No I/O.

- An endpoint names a URL and the event types it wants (``email.*`` for the three mail events, ``*`` for all).
  Deployed, the URL is HTTPS and may only reach public addresses; locally, loopback is allowed too (the
  receiver a developer runs). The address rule is checked again on every delivery, on the addresses the name
  resolves to then: a name that later points inside is refused then (storage/webhook_transport.py).
- A delivery is a POST of ``{"id", "type", "created_at", "tenant_id", "data"}``, with ``Segments-Webhook-Id`` (the
  delivery's id: the same on every attempt, so a receiver can drop repeats), ``Segments-Key-Id`` and
  ``Segments-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``.
- A failed attempt is tried again after 30 s, 1, 2, 4, 8 minutes (``retry_delay``); after ``MAX_ATTEMPTS`` the
  delivery is dead (the dead-letter queue keeps it). ``DISABLE_AFTER`` dead deliveries in a row switch the
  endpoint off, with the reason; a delivered one resets the count.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chalicelib.domain.errors import ValidationFailed

EVENT_TYPES = (
    "segment.entered",
    "segment.exited",
    "campaign.sent",
    "email.delivered",
    "email.opened",
    "email.clicked",
    "contact.unsubscribed",
    "trigger.fired",
    "journey.step",
    "reward.granted",
)
TEST_EVENT = "webhook.test"
PATTERNS = (*EVENT_TYPES, "email.*", "*")
MAX_ENDPOINTS = 10
MAX_URL = 2_048
MAX_ATTEMPTS = 6
DISABLE_AFTER = 5
"""Dead deliveries in a row (each after every attempt) that switch an endpoint off."""
TIMEOUT_SECONDS = 5.0
"""Connect and answer, each: a slow receiver fails fast and is tried again later."""
ENABLED, DISABLED = "enabled", "disabled"
DELIVERED, RETRYING, FAILED = "delivered", "retrying", "failed"
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}

WEBHOOK_FIELDS: dict[str, Any] = {
    "url": {"type": "string", "minLength": 1, "maxLength": MAX_URL},
    "events": {
        "type": "array",
        "minItems": 1,
        "maxItems": len(PATTERNS),
        "uniqueItems": True,
        "items": {"type": "string", "enum": list(PATTERNS)},
    },
    "description": {"type": ["string", "null"], "maxLength": 500},
}


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    events: list[str]
    description: str | None
    secret: str
    key_id: str
    status: str
    version: int
    created_at: str
    updated_at: str
    disabled_reason: str | None = None
    failures_in_a_row: int = 0


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery as the endpoint's log shows it (its latest attempt)."""

    id: str
    event_id: str
    type: str
    created_at: str  # the event's time: the log is in this order
    status: str  # delivered, retrying, failed
    attempts: int
    at: str  # the latest attempt
    response_status: int | None = None
    latency_ms: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Attempt:
    """What the receiver answered (``status``), or why nothing was answered (``error``)."""

    status: int | None
    latency_ms: int
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def problem(self) -> str:
        if self.error:
            return self.error
        if self.status is not None and 300 <= self.status < 400:
            return f"HTTP {self.status}: redirects are not followed"
        return f"HTTP {self.status}"


def hears(patterns: list[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``patterns`` gets ``event_type``."""
    return "*" in patterns or event_type in patterns or (event_type.startswith("email.") and "email.*" in patterns)


def address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, local: bool) -> bool:
    """Public addresses only (never private, link-local, metadata, multicast or reserved ones); locally, loopback
    too."""
    if address in METADATA_ADDRESSES:
        return False
    if local and address.is_loopback:
        return True
    return address.is_global and not address.is_multicast


def check_url(raw: str, *, local: bool) -> str:
    """The endpoint's URL as stored, or ValidationFailed on ``url`` saying why."""
    if any(ord(character) <= 0x20 or ord(character) == 0x7F for character in raw):
        raise ValidationFailed("url", "url may not hold spaces or control characters.")
    parts = urlsplit(raw)
    allowed = ("https", "http") if local else ("https",)
    if parts.scheme not in allowed:
        refusal = "url must be https://" if not local else "url must be http:// or https://"
        raise ValidationFailed("url", refusal + ("" if local else " (http is allowed only locally)."))
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise ValidationFailed("url", "url needs a host, and no user, password or #fragment.")
    try:
        port = parts.port
    except ValueError:
        raise ValidationFailed("url", "url has a port that is not a number from 0 to 65535.") from None
    if port == 0:
        raise ValidationFailed("url", "url has port 0.")
    host = parts.hostname
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not address_allowed(literal, local=local):
        raise ValidationFailed("url", f"url points at {host}, which is not a public address.")
    if literal is None and host.rstrip(".").lower() in ("localhost", "localhost.localdomain") and not local:
        raise ValidationFailed("url", "url points at localhost.")
    return parts.geturl()


def retry_delay(attempt: int) -> int:
    """Seconds before attempt ``attempt + 1``, after ``attempt`` failed (SQS delays at most 900 s)."""
    return int(min(900, 30 * 2 ** (attempt - 1)))


def delivery_id(webhook_id: str, event_id: str) -> str:
    """The same for every attempt of one event to one endpoint."""
    return "whd_" + hashlib.sha256(f"{webhook_id}|{event_id}".encode()).hexdigest()[:32]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def after_outcome(webhook: Webhook, delivered: bool, problem: str | None) -> tuple[int, str | None]:
    """The endpoint's dead deliveries in a row after one more delivery ended, and the reason to switch it off
    (None: it stays on)."""
    if delivered:
        return 0, None
    failures = webhook.failures_in_a_row + 1
    if failures >= DISABLE_AFTER:
        return failures, f"{failures} deliveries in a row failed after {MAX_ATTEMPTS} attempts each; last: {problem}"
    return failures, None
