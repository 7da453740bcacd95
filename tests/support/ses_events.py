"""SES events as the configuration set publishes them through SNS to the SES-events queue (the SQS body)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta


def ses_notification(
    kind: str, message_id: str, tags: dict[str, str], minutes_ago: float = 0, link: str | None = None
) -> dict:
    """``kind``: Send, Delivery, Open, Click, Bounce…; ``tags``: the message tags the mail was sent with."""
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    detail: dict = {"timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    if link:
        detail["link"] = link
    message = {
        "eventType": kind,
        "mail": {"messageId": message_id, "tags": {name: [value] for name, value in tags.items()}},
        kind.lower(): detail,
    }
    return {"Type": "Notification", "Message": json.dumps(message)}
