"""A sent message as the console's Mailbox shows it: its headers, and its HTML and text parts."""

from __future__ import annotations

from email import message_from_string
from email.message import Message
from email.policy import default
from typing import Any

SHOWN_HEADERS = (
    "From",
    "To",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


def _body(message: Message, subtype: str) -> str | None:
    for part in message.walk():
        if part.get_content_type() == f"text/{subtype}" and not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    return None


def read_message(raw: str) -> dict[str, Any]:
    """Headers worth showing (in that order), the HTML and text bodies, and the unsubscribe URL."""
    message = message_from_string(raw, policy=default)
    headers = [{"name": name, "value": str(message[name])} for name in SHOWN_HEADERS if message[name] is not None]
    unsubscribe = str(message.get("List-Unsubscribe", "")).strip()
    return {
        "headers": headers,
        "html": _body(message, "html"),
        "text": _body(message, "plain"),
        "unsubscribe_url": unsubscribe[1:-1] if unsubscribe.startswith("<") and unsubscribe.endswith(">") else None,
        "one_click": message.get("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click",
    }
