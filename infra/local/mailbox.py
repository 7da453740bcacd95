"""The local runtime's mailbox: every email moto's SES accepted, kept the way a local mail catcher keeps them.

``ses_simulator``'s SendEmail wrap records each one here, inside the moto process, with the SES tags the app
sent (``tenant_id``, and ``campaign_id`` or ``trigger_id``). The moto server serves them as JSON
(``infra/local/moto_server.py``) to the app's ``GET /local/mail`` routes, one tenant at a time:

- ``GET /_local/mail?tenant_id=…&limit=…&before=…``: newest first, without bodies;
- ``GET /_local/mail/{message id}?tenant_id=…``: one message with its raw MIME text.

Held in memory for the runtime's life (the last KEEP messages); not part of the saved state.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from typing import Any

KEEP = 5_000
_lock = threading.Lock()
_numbers = itertools.count(1)
_messages: deque[dict[str, Any]] = deque(maxlen=KEEP)


def record(message_id: str, tags: dict[str, str], raw: bytes) -> None:
    headers = message_from_bytes(raw, policy=default)
    entry = {
        "id": message_id,
        "tenant_id": tags.get("tenant_id"),
        "tags": {name: value for name, value in tags.items() if name != "tenant_id"},
        "sent_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "from": str(headers.get("From", "")),
        "to": str(headers.get("To", "")),
        "subject": str(headers.get("Subject", "")),
        "raw": raw.decode("utf-8", errors="replace"),
    }
    with _lock:
        entry["number"] = next(_numbers)
        _messages.append(entry)


def newest(tenant_id: str, limit: int, before: int | None) -> list[dict[str, Any]]:
    """A tenant's messages, newest first, numbered below ``before`` (``limit`` of them), without bodies."""
    with _lock:
        kept = list(_messages)
    found = [m for m in reversed(kept) if m["tenant_id"] == tenant_id and (before is None or m["number"] < before)]
    return [{k: v for k, v in m.items() if k not in ("raw", "tenant_id")} for m in found[:limit]]


def one(tenant_id: str, message_id: str) -> dict[str, Any] | None:
    with _lock:
        kept = list(_messages)
    found = next((m for m in kept if m["id"] == message_id and m["tenant_id"] == tenant_id), None)
    return None if found is None else {k: v for k, v in found.items() if k != "tenant_id"}
