"""The actions triggers and journey steps apply to one contact: add_tag, remove_tag, reward, announce, webhook and
send_email. Each is idempotent per ``key`` (what names the firing or the step): tags are sets, a reward's id
derives from the key, an email is claimed before SES, a webhook event's id is the key's, so an action redone
after a crash or a redelivery is the same action.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from chalicelib.domain import campaigns as campaign_rules
from chalicelib.domain import triggers as rules
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.contacts import Contact
from chalicelib.domain.engagements import Reward
from chalicelib.domain.templates import Templates
from chalicelib.services import engagements, mail, sending, webhooks
from chalicelib.services.contacts import contact_view, rewrite_contact
from chalicelib.services.context import TenantContext


@dataclass(frozen=True)
class Actor:
    """What applies the action: a trigger or a journey (named in rewards, change sources, mail tags, events)."""

    kind: str
    id: str
    name: str
    step: str | None = None


class SendLater(Exception):
    """SES or the tenant's send rate cannot take the email now: the queue message is retried later."""


def apply_action(
    ctx: TenantContext,
    actor: Actor,
    action: dict[str, Any],
    contact: Contact,
    key: str,
    depth: int,
    now: datetime,
    rewards: list[tuple[int, Reward]] | None = None,
) -> None:
    """Apply one action; given ``rewards`` (a trigger run's batch), reward lines are added there for the caller
    to write together."""
    kind = action["type"]
    if kind in (rules.ADD_TAG, rules.REMOVE_TAG):
        _change_tag(ctx, actor, contact, action["tag"], kind == rules.ADD_TAG, depth)
    elif kind == rules.REWARD:
        source = {"type": actor.kind, "id": actor.id, "name": actor.name}
        line = engagements.reward_line(contact.id, action, f"{actor.kind}|{key}", source, to_rfc3339(now))
        if rewards is None:
            ctx.ports.engagements.add_reward(contact.ordinal, line)
            webhooks.rewards_granted(ctx, [line])
        else:
            rewards.append((contact.ordinal, line))
    elif kind == rules.ANNOUNCE:
        ctx.ports.triggers.give_announcement(contact.id, action["announcement_id"], to_rfc3339(now))
    elif kind == rules.WEBHOOK:
        at = to_rfc3339(now)
        if actor.kind == "journey":
            webhooks.journey_step(ctx, actor.id, actor.step, contact.id, key, at, only=action["webhook_id"])
        else:
            webhooks.trigger_fired(ctx, actor.id, contact.id, key, at, only=action["webhook_id"])
    else:
        _send_email(ctx, actor, action, contact, key)


def _change_tag(ctx: TenantContext, actor: Actor, contact: Contact, tag: str, add: bool, depth: int) -> None:
    if tag not in ctx.usable_tags:
        raise ValueError(f"tag {tag} no longer exists")

    def compute(before: Contact, now: str) -> Contact:
        tags = before.tags | {tag} if add else before.tags - {tag}
        if tags == before.tags:
            return before
        return replace(before, tags=frozenset(tags), version=before.version + 1, updated_at=now)

    rewrite_contact(
        ctx,
        lambda: ctx.ports.contacts.get_contact(contact.id),
        compute,
        "tags",
        source=f"{actor.kind}:{actor.id}",
        depth=depth + 1,
    )


def _send_email(ctx: TenantContext, actor: Actor, action: dict[str, Any], contact: Contact, key: str) -> None:
    """Like a campaign email: never to a suppressed address, in the tenant's send rate, claimed before SES,
    never sent twice; throttled or refused by the account, it is released and the message retried."""
    if not contact.email:
        return
    email = contact.email.lower()
    if ctx.ports.suppressions.get_suppression(email) is not None:
        return
    rate = int(ctx.settings["send_rate_per_second"])
    slot = ctx.ports.sends.reserve_send_slots(1, rate, int(time.time() * 1000), sending.MAX_AHEAD_MS)
    if slot is None:
        raise SendLater("the tenant's send rate is taken for the next seconds")
    if not ctx.ports.triggers.claim_mail(contact.id, key):
        return  # claimed by an earlier delivery: sent, or its outcome unknown; either way not again
    time.sleep(max(0.0, slot / 1000 - time.time()))
    templates = Templates(action["subject"], action.get("html"), action.get("text"))
    tags = {f"{actor.kind}_id": actor.id, "contact_id": contact.id}
    tracked = mail.tracked(ctx, None)  # a trigger's or a journey's email follows the tenant's setting
    delivery = mail.deliver(ctx, action["from"], email, templates, contact_view(contact), tags, tracked=tracked)
    if delivery.account_wide:
        ctx.ports.triggers.release_mail(contact.id, key)
        raise SendLater(delivery.reason or delivery.status)
    state = {campaign_rules.DELIVERED: "sent", campaign_rules.UNCERTAIN: "unknown"}.get(delivery.status, "failed")
    ctx.ports.triggers.settle_mail(contact.id, key, state, delivery.message_id, delivery.reason)
    if state == "failed":
        raise RuntimeError(f"the email was not sent: {delivery.reason}")
