"""The "contact changed" message: one per create, update, delete, tag change or event append.

Shape (JSON on the ``segments-contact-changes`` queue, or ``segments-contact-changes-bulk`` when many come
at once: :func:`queue_for`)::

    {"kind": "contact.changed", "tenant_id": "ten_…", "contact_id": "ctc_…",
     "version": 7, "change": "created" | "updated" | "deleted" | "tags" | "events",
     "tags_added": ["vip"], "tags_removed": [], "event_types": ["purchase"],
     "events": [{"id": "evt_…", "type": "purchase", "amount": 70}],
     "source": "api" | "import:job_…" | "job:job_…" | "trigger:trg_…", "depth": 0,
     "at": "2026-11-22T10:00:00.000Z"}

``depth`` counts the triggers that led to this change (domain/triggers.py): 0 for
a change a person or a client made.

Consumers re-read the contact (the message says *that* it changed and why), so a
duplicate or out-of-order message is harmless. Each message is written to an outbox
(ports/outbox.py) in the same transaction as the contact write, queued right after,
and cleared once queued; if SQS refuses, the minute relay queues it: no change is lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.contacts import Contact
from chalicelib.domain.ids import new_id
from chalicelib.logs import logger
from chalicelib.ports.messages import ContactChanged
from chalicelib.ports.outbox import ChangeOutbox
from chalicelib.ports.queues import MessageQueues
from chalicelib.resources import CONTACT_CHANGES_BULK_QUEUE, CONTACT_CHANGES_QUEUE
from chalicelib.services.context import TenantContext


def change_message(
    tenant_id: str,
    before: Contact | None,
    after: Contact | None,
    change: str,
    source: str = "api",
    events: Iterable[dict[str, Any]] = (),
    depth: int = 0,
) -> ContactChanged:
    old_tags = before.tags if before else frozenset()
    new_tags = after.tags if after else frozenset()
    contact = after or before
    assert contact is not None
    return ContactChanged(
        kind="contact.changed",
        id=new_id("change"),
        tenant_id=tenant_id,
        contact_id=contact.id,
        version=after.version if after else contact.version + 1,
        change=change,
        tags_added=sorted(new_tags - old_tags),
        tags_removed=sorted(old_tags - new_tags),
        event_types=sorted({e["type"] for e in events}),
        events=[{"id": e["id"], "type": e["type"], "amount": e.get("amount"), "at": e.get("at")} for e in events],
        source=source,
        depth=depth,
        at=to_rfc3339(system_clock()),
    )


BULK_SOURCES = ("import:", "job:")


def queue_for(messages: Sequence[ContactChanged]) -> str:
    """Changes that come many at once (a job's, or several contacts' in one request) go to the bulk queue, whose
    consumer gathers large batches; a lone change goes to the interactive queue, handled as soon as it lands."""
    if len(messages) > 1 or any(m["source"].startswith(BULK_SOURCES) for m in messages):
        return CONTACT_CHANGES_BULK_QUEUE
    return CONTACT_CHANGES_QUEUE


def publish(ctx: TenantContext, *written: Sequence[ContactChanged]) -> None:
    """Queue messages already in the outbox, each argument the messages of one write (or one ``put``), then clear
    them there, each group as it was written.

    If SQS refuses, they stay in the outbox and :func:`relay_pending` queues them within a minute or two."""
    messages = [message for group in written for message in group]
    if not messages:
        return
    try:
        ctx.ports.queues.send(queue_for(messages), messages)
    except Exception:
        logger.exception("contact changes not queued; the outbox relay will", extra={"count": len(messages)})
        return
    ctx.ports.outbox.forget(written)


RELAY_AFTER = timedelta(seconds=60)
"""The relay leaves younger messages to the request that wrote them (it queues them right after its write)."""


def relay_pending(outbox: ChangeOutbox, queues: MessageQueues, clock: Clock = system_clock) -> int:
    """Queue the outbox messages whose request did not (the minute schedule, for every tenant) on the bulk queue,
    where a minute more of batching window changes nothing; return how many."""
    relayed = 0
    while written := outbox.pending(to_rfc3339(clock() - RELAY_AFTER)):
        messages = [message for group in written for message in group]
        queues.send(CONTACT_CHANGES_BULK_QUEUE, messages)
        outbox.forget(written)
        relayed += len(messages)
    if relayed:
        logger.warning("contact changes relayed from the outbox", extra={"count": relayed})
    return relayed
