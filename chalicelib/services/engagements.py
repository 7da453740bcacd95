"""Announcements, challenges and rewards: the admin side (CRUD, dependents, rewards ledger).

What a contact sees of them is services/portal.py; the rules (windows, goals,
progress, reward ids) are chalicelib/domain/engagements.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chalicelib.domain import engagements as rules
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.contacts import Contact
from chalicelib.domain.engagements import Engagement, Reward, StaleEngagement
from chalicelib.domain.errors import NotFound, changed_meanwhile
from chalicelib.domain.ids import new_id
from chalicelib.domain.validation import validate
from chalicelib.services import dependents, webhooks
from chalicelib.services.contacts import resolve
from chalicelib.services.context import TenantContext
from chalicelib.services.membership import segments_holding
from chalicelib.services.paging import page
from chalicelib.services.segments import check_targets

PROBLEMS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "Stored values that cannot be read (written before today's rules): edit or delete the record.",
    "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}},
}
_segments = {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 50}
_window = {
    "starts_at": {"type": "string", "maxLength": 40, "format": "date-time"},
    "ends_at": {"type": "string", "maxLength": 40, "format": "date-time"},
}
_status = {"type": "string", "enum": [rules.ENABLED, rules.DISABLED]}
_ANNOUNCEMENT_FIELDS = {
    "title": {"type": "string", "minLength": 1, "maxLength": rules.MAX_TITLE},
    "body": {"type": "string", "minLength": 1, "maxLength": rules.MAX_BODY},
    "segments": _segments,
    "status": _status,
    **_window,
}
_CHALLENGE_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": rules.MAX_TITLE},
    "description": {"type": ["string", "null"], "maxLength": rules.MAX_BODY},
    "segments": _segments,
    "goal": rules.GOAL_SCHEMA,
    "reward": rules.REWARD_SCHEMA,
    "status": _status,
    **_window,
}
SCHEMAS: dict[str, dict[str, dict[str, Any]]] = {
    rules.ANNOUNCEMENT: {
        "create": {
            "type": "object",
            "additionalProperties": False,
            "required": ["title", "body", "segments", "starts_at", "ends_at"],
            "properties": _ANNOUNCEMENT_FIELDS,
        },
        "patch": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": _ANNOUNCEMENT_FIELDS,
        },
        "view": {
            "type": "object",
            "required": ["id", "title", "body", "segments", "starts_at", "ends_at", "status", "active"],
            "properties": {
                **_ANNOUNCEMENT_FIELDS,
                "id": {"type": "string"},
                "active": {"type": "boolean"},
                "status_reason": {"type": ["string", "null"]},
                "problems": PROBLEMS_SCHEMA,
            },
        },
    },
    rules.CHALLENGE: {
        "create": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "segments", "starts_at", "ends_at", "goal", "reward"],
            "properties": _CHALLENGE_FIELDS,
        },
        "patch": {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": _CHALLENGE_FIELDS},
        "view": {
            "type": "object",
            "required": ["id", "name", "segments", "starts_at", "ends_at", "goal", "reward", "status", "active"],
            "properties": {
                **_CHALLENGE_FIELDS,
                "id": {"type": "string"},
                "active": {"type": "boolean"},
                "status_reason": {"type": ["string", "null"]},
                "problems": PROBLEMS_SCHEMA,
            },
        },
    },
}
REWARD_VIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "amount", "currency", "source", "at"],
    "properties": {
        "id": {"type": "string"},
        "amount": {"type": "number"},
        "currency": {"type": "string"},
        "note": {"type": ["string", "null"]},
        "source": {"type": "object"},
        "at": {"type": "string"},
    },
}
REWARDS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": REWARD_VIEW_SCHEMA},
        "next_cursor": {"type": ["string", "null"]},
        "totals": {"type": "object", "additionalProperties": {"type": "number"}},
    },
}
# the name each kind's API uses for Engagement.name / Engagement.body
_NAME = {rules.ANNOUNCEMENT: "title", rules.CHALLENGE: "name"}
_BODY = {rules.ANNOUNCEMENT: "body", rules.CHALLENGE: "description"}


def engagement_view(engagement: Engagement, clock: Clock = system_clock) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": engagement.id,
        _NAME[engagement.kind]: engagement.name,
        _BODY[engagement.kind]: engagement.body,
        "segments": engagement.segments,
        "starts_at": engagement.starts_at,
        "ends_at": engagement.ends_at,
        "status": engagement.status,
        "status_reason": engagement.status_reason,
        "active": is_active(engagement, clock),
        "version": engagement.version,
        "created_at": engagement.created_at,
        "updated_at": engagement.updated_at,
    }
    if engagement.kind == rules.CHALLENGE:
        view.update(goal=engagement.goal, reward=engagement.reward)
    problems = rules.Window(engagement.starts_at, engagement.ends_at).problems()
    if problems:
        view["problems"] = problems
    return view


def is_active(engagement: Engagement, clock: Clock = system_clock) -> bool:
    """Enabled, targeting a segment, and inside its window."""
    window = rules.Window(engagement.starts_at, engagement.ends_at)
    return engagement.status == rules.ENABLED and bool(engagement.segments) and window.is_open(clock())


def _require(ctx: TenantContext, kind: str, engagement_id: str) -> Engagement:
    engagement = ctx.ports.engagements.get(kind, engagement_id)
    if engagement is None:
        raise NotFound(f"{kind.capitalize()} {engagement_id} does not exist.", {"field": "id"})
    return engagement


def _checked(ctx: TenantContext, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    window = rules.check_window(fields["starts_at"], fields["ends_at"])
    checked: dict[str, Any] = {
        "name": fields[_NAME[kind]].strip(),
        "body": fields.get(_BODY[kind]),
        "segments": check_targets(ctx, "segments", fields["segments"], owner=kind),
        "starts_at": window.starts_at,
        "ends_at": window.ends_at,
        "status": fields.get("status", rules.ENABLED),
    }
    if kind == rules.CHALLENGE:
        checked["goal"] = fields["goal"]
        checked["reward"] = rules.check_reward(fields["reward"], "reward")
    return checked


def create(ctx: TenantContext, kind: str, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, SCHEMAS[kind]["create"])
    now = to_rfc3339(clock())
    engagement = Engagement(
        id=new_id(kind), kind=kind, version=1, created_at=now, updated_at=now, **_checked(ctx, kind, body)
    )
    ctx.ports.engagements.create(engagement)
    return engagement_view(engagement, clock)


def get(ctx: TenantContext, kind: str, engagement_id: str) -> dict[str, Any]:
    return engagement_view(_require(ctx, kind, engagement_id))


def list_page(ctx: TenantContext, kind: str, limit_: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = ctx.tenant_id
    return page(
        f"{kind}s:{tenant_id}", cursor, lambda start: ctx.ports.engagements.page(kind, limit_, start), engagement_view
    )


def update(ctx: TenantContext, kind: str, engagement_id: str, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, SCHEMAS[kind]["patch"])
    before = _require(ctx, kind, engagement_id)
    current = {k: v for k, v in engagement_view(before).items() if k in SCHEMAS[kind]["patch"]["properties"]}
    fields = _checked(ctx, kind, {**current, **body})
    if not before.segments and "status" not in body:
        fields["status"] = rules.ENABLED  # disabled when its last segment was deleted; it has one again
    after = replace(before, **fields, status_reason=None, version=before.version + 1, updated_at=to_rfc3339(clock()))
    try:
        ctx.ports.engagements.save(before, after)
    except StaleEngagement:
        raise changed_meanwhile(f"{kind.capitalize()} {engagement_id}") from None
    return engagement_view(after, clock)


def delete(ctx: TenantContext, kind: str, engagement_id: str, confirm: bool = False) -> None:
    engagement = _require(ctx, kind, engagement_id)
    dependents.review(kind, ctx, engagement.id, f"{kind} {engagement.name!r}", confirm)
    try:
        ctx.ports.engagements.delete(engagement)
    except StaleEngagement:
        raise changed_meanwhile(f"{kind.capitalize()} {engagement_id}") from None
    dependents.release(kind, ctx, engagement.id, f"{kind} {engagement.name!r} ({engagement.id}) was deleted")


def targeting(ctx: TenantContext, contact: Contact, engagements: list[Engagement], clock: Clock) -> list[Engagement]:
    """The active ones with the contact in at least one of their segments (one batch read of member chunks)."""
    active = [e for e in engagements if is_active(e, clock)]
    holds = segments_holding(ctx, contact.ordinal, {s for e in active for s in e.segments})
    return [e for e in active if holds & set(e.segments)]


def award_challenges(ctx: TenantContext, contact_id: str, clock: Clock = system_clock) -> int:
    """Reward the contact for every active challenge of its segments whose goal it has now reached
    (after its events changed); each challenge rewards a contact once however often this runs."""
    active = [c for c in ctx.challenges if is_active(c, clock)]
    if not active:
        return 0
    contact, events = ctx.ports.contacts.read_contact(contact_id)
    if contact is None:
        return 0
    granted = 0
    for challenge in targeting(ctx, contact, active, clock):
        assert challenge.goal is not None and challenge.reward is not None
        window = rules.Window(challenge.starts_at, challenge.ends_at)
        if rules.progress(challenge.goal, window, events).complete:
            cause = f"challenge|{challenge.id}|{contact.id}"
            source = {"type": "challenge", "id": challenge.id, "name": challenge.name}
            granted += grant_reward(ctx, contact.id, contact.ordinal, challenge.reward, cause, source, clock)
    return granted


# --- rewards -------------------------------------------------------------------------------------------


def reward_line(contact_id: str, reward: dict[str, Any], cause: str, source: dict[str, Any], at: str) -> Reward:
    """The ledger line of ``reward`` for ``cause``: its id derives from the cause."""
    return Reward(
        id=rules.reward_id(cause),
        contact_id=contact_id,
        amount=reward["amount"],
        currency=reward["currency"],
        note=reward.get("note"),
        source=source,
        at=at,
    )


def grant_reward(
    ctx: TenantContext, contact_id: str, ordinal: int, reward: dict[str, Any], cause: str, source: dict[str, Any],
    clock: Clock = system_clock,
) -> bool:  # fmt: skip
    """Add ``reward`` to the contact's ledger once per ``cause``; True if this call added it."""
    line = reward_line(contact_id, reward, cause, source, to_rfc3339(clock()))
    added = ctx.ports.engagements.add_reward(ordinal, line)
    webhooks.rewards_granted(ctx, [line])  # again when this is a redelivery: the same event id
    return added


def reward_view(reward: Reward) -> dict[str, Any]:
    return {
        "id": reward.id,
        "amount": reward.amount,
        "currency": reward.currency,
        "note": reward.note,
        "source": reward.source,
        "at": reward.at,
    }


def totals(rewards: list[Reward]) -> dict[str, float]:
    sums: dict[str, float] = {}
    for reward in rewards:
        sums[reward.currency] = round(sums.get(reward.currency, 0) + reward.amount, 2)
    return sums


def rewards_of(ctx: TenantContext, reference: str, limit_: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = ctx.tenant_id
    contact = resolve(ctx, reference)
    listing = page(
        f"rewards:{tenant_id}:{contact.id}",
        cursor,
        lambda start: ctx.ports.engagements.rewards_page(contact.id, contact.ordinal, limit_, start),
        reward_view,
    )
    return {**listing, "totals": totals(ctx.ports.engagements.all_rewards(contact.id, contact.ordinal))}


# --- segments they target ------------------------------------------------------------------------------


def _users(ctx: TenantContext, segment_id: str) -> list[Engagement]:
    """Announcements, and challenges not over yet, that target the segment."""
    found = [e for e in ctx.ports.engagements.all_of(rules.ANNOUNCEMENT) if segment_id in e.segments]
    for challenge in ctx.ports.engagements.all_of(rules.CHALLENGE):
        if segment_id in challenge.segments and to_rfc3339(system_clock()) < challenge.ends_at:
            found.append(challenge)
    return found


def _dependents(ctx: TenantContext, segment_id: str) -> list[dict[str, Any]]:
    return [
        {"type": e.kind, "id": e.id, "name": e.name, "status": e.status, "active": is_active(e)}
        for e in _users(ctx, segment_id)
    ]


def _release(ctx: TenantContext, segment_id: str, reason: str) -> None:
    """Drop the deleted segment from each; one left without a segment is disabled and says why."""
    for engagement in _users(ctx, segment_id):
        left = [s for s in engagement.segments if s != segment_id]
        after = replace(
            engagement,
            segments=left,
            status=engagement.status if left else rules.DISABLED,
            status_reason=engagement.status_reason if left else f"{reason}; choose a segment to enable it again",
            version=engagement.version + 1,
        )
        try:
            ctx.ports.engagements.save(engagement, after)
        except StaleEngagement:
            _release(ctx, segment_id, reason)  # it changed meanwhile: look again
            return


DEPENDENTS: list[dependents.Registration] = [("segment", _dependents, _release)]
"""What announcements and challenges depend on (registered by chalicelib/composition.py)."""
