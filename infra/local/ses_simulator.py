"""The SES mailbox simulator, locally: what SES does for its simulator addresses, done inside moto.

Mail to ``bounce@simulator.amazonses.com`` or ``complaint@simulator.amazonses.com`` is followed by the
notification SES would publish through the configuration set's SNS destination (same shape, same message
tags), so bounce and complaint handling runs end to end on a laptop and in the tests. Every message sent
is also kept in the local mailbox (infra/local/mailbox.py), which the console's Mailbox shows. It lives here, with
the other local stand-ins, so the production mailer (chalicelib/storage/mailer.py) only sends.
"""

from __future__ import annotations

import base64
import json
from email import message_from_bytes
from email.utils import getaddresses
from typing import Any

from moto.sesv2.responses import SESV2Response
from moto.sns.models import sns_backends

from chalicelib.resources import SES_EVENTS_TOPIC
from infra.local import mailbox

SIMULATOR_DOMAIN = "simulator.amazonses.com"


def feedback_event(recipient: str, message_id: str, tags: dict[str, str]) -> dict[str, Any] | None:
    """The SES event a simulator address produces (None for the others, and for ``success@``)."""
    mailbox, _, domain = recipient.partition("@")
    common = {"messageId": message_id, "destination": [recipient], "tags": {k: [v] for k, v in tags.items()}}
    if domain != SIMULATOR_DOMAIN:
        return None
    if mailbox == "bounce":
        bounced = {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": recipient}],
        }
        return {"eventType": "Bounce", "bounce": bounced, "mail": common}
    if mailbox == "complaint":
        return {
            "eventType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": recipient}]},
            "mail": common,
        }
    return None


def _recipients(params: dict[str, Any]) -> list[str]:
    raw = base64.b64decode(params.get("Content", {}).get("Raw", {}).get("Data", ""))
    headers = message_from_bytes(raw)
    listed = [address for _, address in getaddresses(headers.get_all("To", []))]
    return listed + list(params.get("Destination", {}).get("ToAddresses", []))


def install() -> None:
    """Wrap moto's SESv2 SendEmail (once per process)."""
    original = SESV2Response.send_email
    if hasattr(original, "__wrapped__"):
        return

    def send_email(self: SESV2Response) -> str:
        answer = original(self)
        params = json.loads(self.body)
        message_id = json.loads(answer)["MessageId"]
        tags = {tag["Name"]: tag["Value"] for tag in params.get("EmailTags", [])}
        raw = params.get("Content", {}).get("Raw", {}).get("Data")
        if raw is not None:
            mailbox.record(message_id, tags, base64.b64decode(raw))  # the console's Mailbox (infra/local/mailbox.py)
        backend = sns_backends[self.current_account][self.region]
        for recipient in _recipients(params):
            event = feedback_event(recipient, message_id, tags)
            topic = next((arn for arn in backend.topics if arn.endswith(":" + SES_EVENTS_TOPIC)), None)
            if event is not None and topic is not None:
                backend.publish(message=json.dumps(event), arn=topic)
        return answer

    send_email.__wrapped__ = original  # type: ignore[attr-defined]  # marks the wrap, as functools.wraps would
    SESV2Response.send_email = send_email  # type: ignore[method-assign]  # moto's class, replaced in place
