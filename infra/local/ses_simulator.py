"""SES's event publishing, locally: what SES does after it accepted a message, done inside moto.

- Mail to ``bounce@simulator.amazonses.com`` or ``complaint@simulator.amazonses.com`` is followed by the
  notification SES would publish through the configuration set's SNS destination (same shape, same message
  tags), so bounce and complaint handling runs end to end on a laptop and in the tests.
- With ``publish_deliveries`` on (``make run`` turns it on: infra/local/moto_server.py), every other recipient's
  ``Delivery`` event is published too, as SES does once the recipient's server took the mail.
- Mail sent through the tracked configuration set gets SES's open pixel and tracked links
  (infra/local/tracking.py), whose opens and clicks the local runtime publishes as SES would.

Every message sent is kept in the local mailbox (infra/local/mailbox.py) as the recipient would get it, which
the console's Mailbox shows. It lives here, with the other local stand-ins, so the production mailer
(chalicelib/storage/mailer.py) only sends.
"""

from __future__ import annotations

import base64
import json
from email import message_from_bytes
from email.utils import getaddresses
from typing import Any

from moto.sesv2.responses import SESV2Response
from moto.sns.models import sns_backends

from chalicelib.resources import SES_EVENTS_TOPIC, TRACKED_CONFIGURATION_SET
from infra.local import mailbox, tracking

SIMULATOR_DOMAIN = "simulator.amazonses.com"
publish_deliveries = False
"""Off in the tests, where a Delivery event per sent mail would only be work nobody reads; ``make run`` and the
tests of engagement turn it on."""


def feedback_event(recipient: str, mail: tracking.SentMail) -> dict[str, Any] | None:
    """The SES event a simulator address produces (None for the others, and for ``success@``)."""
    local_part, _, domain = recipient.partition("@")
    if domain != SIMULATOR_DOMAIN:
        return None
    if local_part == "bounce":
        bounced = {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": recipient}],
        }
        return {"eventType": "Bounce", "bounce": bounced, "mail": mail.common()}
    if local_part == "complaint":
        return {
            "eventType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": recipient}]},
            "mail": mail.common(),
        }
    return None


def events_after_sending(recipient: str, mail: tracking.SentMail) -> list[dict[str, Any]]:
    """What SES publishes of one recipient once it sent the mail: a bounce, or a delivery (then a complaint)."""
    feedback = feedback_event(recipient, mail)
    bounced = feedback is not None and feedback["eventType"] == "Bounce"
    delivered = [tracking.delivery_event(mail, recipient)] if publish_deliveries and not bounced else []
    return delivered + ([feedback] if feedback is not None else [])


def publish(event: dict[str, Any], account: str, region: str) -> None:
    """Publish ``event`` to the SES events topic, as the configuration set's SNS destination does."""
    backend = sns_backends[account][region]
    topic = next((arn for arn in backend.topics if arn.endswith(":" + SES_EVENTS_TOPIC)), None)
    if topic is not None:
        backend.publish(message=json.dumps(event), arn=topic)


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
        mail = tracking.SentMail(
            message_id=json.loads(answer)["MessageId"],
            source=str(params.get("FromEmailAddress", "")),
            destination=_recipients(params),
            tags={tag["Name"]: tag["Value"] for tag in params.get("EmailTags", [])},
            sent_at=tracking.ses_time(),
            account=self.current_account,
            region=self.region,
        )
        raw = params.get("Content", {}).get("Raw", {}).get("Data")
        if raw is not None:
            delivered = base64.b64decode(raw)
            if params.get("ConfigurationSetName") == TRACKED_CONFIGURATION_SET:
                delivered = tracking.track_links(delivered, mail)
            mailbox.record(mail.message_id, mail.tags, delivered)  # the console's Mailbox (infra/local/mailbox.py)
        for recipient in mail.destination:
            for event in events_after_sending(recipient, mail):
                publish(event, mail.account, mail.region)
        return answer

    send_email.__wrapped__ = original  # type: ignore[attr-defined]  # marks the wrap, as functools.wraps would
    SESV2Response.send_email = send_email  # type: ignore[method-assign]  # moto's class, replaced in place
