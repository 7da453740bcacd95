"""What moto's SES has sent, parsed (in-process moto; the local runtime serves the same at /moto-api/data.json)."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import Message

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends


@dataclass(frozen=True)
class SentMail:
    to: str
    sender: str
    subject: str
    headers: Message
    html: str | None
    text: str | None
    raw: str = ""


def _parts(message: Message) -> tuple[str | None, str | None]:
    html = text = None
    for part in message.walk():
        if part.get_content_type() == "text/html":
            html = part.get_payload(decode=True).decode()
        elif part.get_content_type() == "text/plain":
            text = part.get_payload(decode=True).decode()
    return html, text


def _backend():
    return ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]


def mark() -> int:
    """Where the outbox is now; ``sent_since(mark)`` returns what was sent after it."""
    return len(_backend().sent_messages)


def sent_since(position: int) -> list[SentMail]:
    found = []
    for raw in _backend().sent_messages[position:]:
        message = email.message_from_string(raw.raw_data, policy=email.policy.default)
        html, text = _parts(message)
        found.append(
            SentMail(message["To"], message["From"], str(message["Subject"]), message, html, text, raw.raw_data)
        )
    return found
