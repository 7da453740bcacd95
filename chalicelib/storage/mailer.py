"""SES v2 ``SendEmail`` (raw MIME, so every header we need reaches the recipient), and sender checks.

Locally, SES's mailbox simulator addresses answer as in SES (infra/local/ses_simulator.py).
"""

from __future__ import annotations

import threading
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.ports.mailer import Mail, MailError
from chalicelib.resources import TRACKED_CONFIGURATION_SET, UNTRACKED_CONFIGURATION_SET

_lock = threading.Lock()
_clients: dict[str, Any] = {}


def _client(service: str) -> Any:
    with _lock:
        if service not in _clients:
            _clients[service] = boto3.client(service)
        return _clients[service]


_POLICY = SMTP.clone(max_line_length=998)
"""CRLF line ends, and no folding under RFC 5322's 998: a folded List-Unsubscribe URL becomes encoded words
that mail clients do not read as a link."""


def _mime(mail: Mail) -> bytes:
    message = EmailMessage(policy=_POLICY)
    message["From"] = Address(display_name=mail.sender_name or "", addr_spec=mail.sender)
    message["To"] = mail.to
    if mail.reply_to:
        message["Reply-To"] = mail.reply_to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=mail.sender.rsplit("@", 1)[-1])
    for name, value in mail.headers.items():
        message[name] = value
    if mail.text is not None:
        message.set_content(mail.text)
        if mail.html is not None:
            message.add_alternative(mail.html, subtype="html")
    else:
        message.set_content(mail.html or "", subtype="html")
    return message.as_bytes()


def send_email(mail: Mail) -> str:
    """Send one message; return SES's message id. Raises MailError with SES's error code."""
    arguments: dict[str, Any] = {
        "FromEmailAddress": mail.sender,
        "Content": {"Raw": {"Data": _mime(mail)}},
        "EmailTags": [{"Name": name, "Value": value} for name, value in mail.tags.items()],
        "ConfigurationSetName": TRACKED_CONFIGURATION_SET if mail.tracked else UNTRACKED_CONFIGURATION_SET,
    }
    try:
        message_id = _client("sesv2").send_email(**arguments)["MessageId"]
    except ClientError as error:
        problem = error.response.get("Error", {})
        raise MailError(
            problem.get("Code", "Unknown"),
            problem.get("Message", ""),
            error.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        ) from None
    except BotoCoreError as error:  # timeouts, connection resets: SES may or may not have sent it
        raise MailError(type(error).__name__, str(error), None) from None
    return message_id


def sender_verified(address: str) -> bool:
    """Whether SES may send from ``address``: the address or its domain is a verified identity."""
    for identity in (address, address.rsplit("@", 1)[-1]):
        try:
            found = _client("sesv2").get_email_identity(EmailIdentity=identity)
            if found.get("VerifiedForSendingStatus") or found.get("VerificationStatus") == "SUCCESS":
                return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NotFoundException":
                raise
    return False


class SesMailer:
    """The Mailer port on SES v2 (account-wide, like the queues)."""

    def send(self, mail: Mail) -> str:
        return send_email(mail)

    def sender_verified(self, address: str) -> bool:
        return sender_verified(address)
