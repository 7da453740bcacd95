"""SES's open and click tracking, locally: what SES does to a mail sent through the tracked configuration set
(``TRACKED_CONFIGURATION_SET``), done by the local SES (infra/local/ses_simulator.py), and the tracking
addresses SES serves, served by the local runtime.

- ``track_links``: every http(s) link of the HTML part (but those marked ``ses:no-track``, as SES honours it)
  becomes ``{base}/_local/track/click/{token}``, and an open pixel ``{base}/_local/track/open/{token}`` ends
  the body. ``base`` is the local API's address (the runtime hands it to moto as ``SEGMENTS_LOCAL_TRACKING_URL``),
  so the console's Mailbox loads the pixel and follows the links on its own origin; the API's gateway passes
  ``/_local/track/`` on to moto (infra/local/gateway.py).
- ``followed``: the SES event (``Open`` or ``Click``, SES's shape) that a request of such an address makes,
  and where a click goes; None for anything we did not write. A token is sealed (domain/tokens.py) over the
  message id, its recipients, its SES tags and, for a click, the link: an altered or forged token opens
  nothing, and a click redirects only to the link that was in the mail.

The sealing secret is made per moto process: the links live as long as the mailbox that shows them.
"""

from __future__ import annotations

import html
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from chalicelib.domain import tokens

PATH = "/_local/track/"
PURPOSE = "local-ses-tracking"
_SECRET = secrets.token_bytes(32)
_ANCHOR = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"""(\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
"""A transparent 1×1 GIF, as a tracking pixel answers."""


def tracking_base() -> str:
    return os.environ.get("SEGMENTS_LOCAL_TRACKING_URL", "http://127.0.0.1:8000").rstrip("/")


@dataclass(frozen=True)
class SentMail:
    """What SES knows of a message when it tracks it, and echoes in every event."""

    message_id: str
    source: str
    destination: list[str]
    tags: dict[str, str]
    sent_at: str
    account: str
    region: str

    def common(self) -> dict[str, Any]:
        """The ``mail`` object of an SES event."""
        return {
            "timestamp": self.sent_at,
            "source": self.source,
            "messageId": self.message_id,
            "destination": self.destination,
            "tags": {name: [value] for name, value in self.tags.items()},
        }


def ses_time(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _token(mail: SentMail, link: str | None) -> str:
    payload = {
        "m": mail.message_id,
        "s": mail.source,
        "d": mail.destination,
        "t": mail.tags,
        "at": mail.sent_at,
        "a": mail.account,
        "r": mail.region,
    }
    return tokens.seal({**payload, "l": link} if link else payload, purpose=PURPOSE, secret=_SECRET)


def _tracked_html(body: str, mail: SentMail, base: str) -> str:
    def tracked_href(found: re.Match[str]) -> str:
        link = html.unescape(found.group(3))
        return f"{found.group(1)}{found.group(2)}{base}{PATH}click/{_token(mail, link)}{found.group(2)}"

    def tracked(anchor: re.Match[str]) -> str:
        tag = anchor.group(0)
        return tag if "ses:no-track" in tag.lower() else _HREF.sub(tracked_href, tag, count=1)

    rewritten = _ANCHOR.sub(tracked, body)
    pixel = f'<img src="{base}{PATH}open/{_token(mail, None)}" alt="" width="1" height="1">'
    ends = list(_BODY_END.finditer(rewritten))
    if not ends:
        return rewritten + pixel
    cut = ends[-1].start()
    return rewritten[:cut] + pixel + rewritten[cut:]


def track_links(raw: bytes, mail: SentMail, base: str | None = None) -> bytes:
    """The message as SES delivers it with tracking on (unchanged when it has no HTML part)."""
    message = message_from_bytes(raw, _class=EmailMessage, policy=SMTP)
    parts = [part for part in message.walk() if part.get_content_type() == "text/html"]
    for part in parts:
        part.set_content(_tracked_html(part.get_content(), mail, base or tracking_base()), subtype="html")
    return message.as_bytes() if parts else raw


@dataclass(frozen=True)
class Followed:
    event: dict[str, Any]  # the SES event, as the configuration set's SNS destination publishes it
    account: str
    region: str
    redirect: str | None  # a click's link


def followed(path: str, user_agent: str, address: str, now: datetime | None = None) -> Followed | None:
    """What a request of ``{PATH}open/{token}`` or ``{PATH}click/{token}`` means (None: nothing we wrote)."""
    kind, _, token = path.removeprefix(PATH).partition("/")
    payload = tokens.unseal(token, purpose=PURPOSE, secret=_SECRET)
    if payload is None or kind not in ("open", "click") or (kind == "click") != ("l" in payload):
        return None
    mail = SentMail(payload["m"], payload["s"], payload["d"], payload["t"], payload["at"], payload["a"], payload["r"])
    detail: dict[str, Any] = {"timestamp": ses_time(now), "userAgent": user_agent, "ipAddress": address}
    if kind == "click":
        detail.update({"link": payload["l"], "linkTags": {}})
    ses_type = "Click" if kind == "click" else "Open"
    event = {"eventType": ses_type, "mail": mail.common(), ses_type.lower(): detail}
    return Followed(event, mail.account, mail.region, payload.get("l"))


def delivery_event(mail: SentMail, recipient: str, now: datetime | None = None) -> dict[str, Any]:
    """The ``Delivery`` event SES publishes once the recipient's mail server took the message."""
    delivered = {
        "timestamp": ses_time(now),
        "recipients": [recipient],
        "processingTimeMillis": 1,
        "smtpResponse": "250 2.0.0 OK (local runtime)",
        "reportingMTA": "localhost",
    }
    return {"eventType": "Delivery", "mail": mail.common(), "delivery": delivered}
