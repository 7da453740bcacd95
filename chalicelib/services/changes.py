"""The "contact changed" message: one per create, update, delete, tag change or event append.

Shape (JSON on the ``segments-contact-changes`` queue)::

    {"kind": "contact.changed", "tenant_id": "ten_…", "contact_id": "ctc_…",
     "version": 7, "change": "created" | "updated" | "deleted" | "tags" | "events",
     "tags_added": ["vip"], "tags_removed": [], "event_types": ["purchase"],
     "events": [{"id": "evt_…", "type": "purchase", "amount": 70}],
     "source": "api" | "import:job_…" | "bulk_tag:job_…" | "trigger:trg_…", "depth": 0,
     "at": "2026-11-22T10:00:00.000Z"}

``depth`` counts the triggers that led to this change (domain/triggers.py): 0 for
a change a person or a client made.

Consumers re-read the contact (the message says *that* it changed and why), so a
duplicate or out-of-order message is harmless. Sending happens after the write;
if SQS refuses, the write stands, the failure is logged, and the next full
evaluation reconciles membership.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chalicelib.domain.clock import system_clock, to_rfc3339
from chalicelib.logs import logger
from chalicelib.resources import CONTACT_CHANGES_QUEUE
from chalicelib.storage import queues
from chalicelib.storage.contacts import Contact


def change_message(
    tenant_id: str,
    before: Contact | None,
    after: Contact | None,
    change: str,
    source: str = "api",
    events: Iterable[dict[str, Any]] = (),
    depth: int = 0,
) -> dict[str, Any]:
    old_tags = before.tags if before else frozenset()
    new_tags = after.tags if after else frozenset()
    contact = after or before
    assert contact is not None
    return {
        "kind": "contact.changed",
        "tenant_id": tenant_id,
        "contact_id": contact.id,
        "version": after.version if after else before.version + 1,
        "change": change,
        "tags_added": sorted(new_tags - old_tags),
        "tags_removed": sorted(old_tags - new_tags),
        "event_types": sorted({e["type"] for e in events}),
        "events": [{"id": e["id"], "type": e["type"], "amount": e.get("amount")} for e in events],
        "source": source,
        "depth": depth,
        "at": to_rfc3339(system_clock()),
    }


def publish(messages: list[dict[str, Any]]) -> None:
    if not messages:
        return
    try:
        queues.send_messages(CONTACT_CHANGES_QUEUE, messages)
    except Exception:
        logger.exception("contact changes not queued", extra={"count": len(messages)})
