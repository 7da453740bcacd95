"""What one contact change sets off, in order: the contact's segment membership, the challenges its events
may complete, and the contact.created / tag.added / event.received triggers it matches.

The contact-changes queue handler only parses the message and calls :func:`react`.
"""

from __future__ import annotations

from chalicelib.ports.messages import ContactChanged
from chalicelib.services import engagements, membership, trigger_firing
from chalicelib.services.context import TenantContext


def react(ctx: TenantContext, change: ContactChanged) -> None:
    cause = {
        "change": change["change"],
        "source": change.get("source", "api"),
        "version": change["version"],
        "depth": change.get("depth", 0),
    }
    membership.update_contact(ctx, change["contact_id"], cause)
    if change["change"] != "deleted":  # events move a goal; tags or attributes may move a segment
        engagements.award_challenges(ctx, change["contact_id"])
        trigger_firing.on_contact_change(ctx, change)
