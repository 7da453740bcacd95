"""What contact changes set off, in order: the contact's segment membership, the challenges its events may
complete, and the contact.created / tag.added / event.received triggers and journeys each change matches.

The contact-changes queue handler only parses the messages and hands each to a :class:`BatchReactions`
made for its batch of records.
"""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.ports.messages import ContactChanged
from chalicelib.services import engagements, journey_flow, membership, trigger_firing
from chalicelib.services.context import TenantContext


def bring_up_to_date(ctx: TenantContext, change: ContactChanged, read: membership.ContactRead | None = None) -> None:
    """The contact's membership and challenges, from the contact as it is now (the message only says that it
    changed): a later change of the same contact finds nothing new to do. ``read``: the contact's reads, made
    for the whole batch (membership.read_batch)."""
    cause = {
        "change": change["change"],
        "source": change.get("source", "api"),
        "version": change["version"],
        "depth": change.get("depth", 0),
    }
    membership.update_contact(ctx, change["contact_id"], cause, read=read)
    if change["change"] != "deleted":  # events move a goal; tags or attributes may move a segment
        engagements.award_challenges(ctx, change["contact_id"])


def fire_triggers(ctx: TenantContext, change: ContactChanged) -> None:
    """The triggers and journeys this very change matches (its tags added, its events): each message counts."""
    if change["change"] != "deleted":
        trigger_firing.on_contact_change(ctx, change)
        journey_flow.on_contact_change(ctx, change)


class BatchReactions:
    """The reactions to one batch of change messages. Membership and challenges re-read the contact, so they
    run once per contact per batch — the first of its messages brings it up to date, with that message's
    cause, exactly as a second delivery would have found nothing left to do; triggers run for every message.
    A contact whose update failed is tried again by its next message in the batch (and SQS retries the one
    that failed).

    :meth:`prepare` reads the batch's contacts together first (each tenant's stamps in one read, its contacts
    evaluated as one Population); a contact's first update uses those reads."""

    def __init__(self, context_for: Callable[[str], TenantContext]) -> None:
        self._context_for = context_for
        self._up_to_date: set[tuple[str, str]] = set()
        self._reads: dict[tuple[str, str], membership.ContactRead] = {}

    def prepare(self, changes: list[ContactChanged]) -> None:
        by_tenant: dict[str, list[str]] = {}
        for change in changes:
            by_tenant.setdefault(change["tenant_id"], []).append(change["contact_id"])
        for tenant_id, contact_ids in by_tenant.items():
            reads = membership.read_batch(self._context_for(tenant_id), contact_ids)
            self._reads.update({(tenant_id, contact_id): read for contact_id, read in reads.items()})

    def react(self, change: ContactChanged) -> None:
        ctx = self._context_for(change["tenant_id"])
        contact = (change["tenant_id"], change["contact_id"])
        if contact not in self._up_to_date:
            bring_up_to_date(ctx, change, self._reads.pop(contact, None))
            self._up_to_date.add(contact)
        fire_triggers(ctx, change)
