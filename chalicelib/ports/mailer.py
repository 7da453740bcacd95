"""Email out: one raw MIME message per call (SES v2 when deployed), and whether a sender may be used."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Mail:
    sender: str
    to: str
    subject: str
    html: str | None
    text: str | None
    headers: dict[str, str]
    tags: dict[str, str]  # message tags: they come back in bounce and complaint notifications
    sender_name: str | None = None  # the From display name (RFC 2047-encoded when not ASCII)
    reply_to: str | None = None
    tracked: bool = True  # opens and clicks tracked (SES: the configuration set whose destination takes them)


class MailError(Exception):
    """What the provider answered instead of accepting the message (``classify_ses_error`` reads it)."""

    def __init__(self, code: str, message: str, http_status: int | None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


class Mailer(Protocol):
    def send(self, mail: Mail) -> str:
        """Send one message; the provider's message id. Raises MailError."""

    def sender_verified(self, address: str) -> bool:
        """Whether mail may be sent from ``address`` (the address or its domain is verified)."""
