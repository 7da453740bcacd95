"""The contact portal: signed, expiring tokens for one contact, and what that contact is targeted by.

A portal token is ``tokens.seal({"t": tenant, "c": contact, "exp": epoch s})``
for the purpose ``portal``: no table holds it, so issuing one writes nothing.
It opens only the ``/portal/*`` routes (http/api.py), and those answer with the
contact's own announcements and challenges, never with the segments that
selected them: no ids, names or criteria.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from chalicelib.config import get_config
from chalicelib.domain import engagements as rules
from chalicelib.domain import tokens
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.contacts import Contact
from chalicelib.domain.errors import Unauthorized
from chalicelib.domain.values import whole_number
from chalicelib.services.contacts import resolve
from chalicelib.services.context import TenantContext
from chalicelib.services.engagements import targeting

DEFAULT_LIFETIME = timedelta(days=7)
MAX_LIFETIME = timedelta(days=30)
MIN_LIFETIME = timedelta(minutes=5)
TOKEN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["token", "expires_at"],
    "properties": {"token": {"type": "string"}, "expires_at": {"type": "string"}},
}
TOKEN_QUERY: dict[str, dict[str, Any]] = {
    "expires_in": {
        "schema": {
            "type": "integer",
            "minimum": int(MIN_LIFETIME.total_seconds()),
            "maximum": int(MAX_LIFETIME.total_seconds()),
            "default": int(DEFAULT_LIFETIME.total_seconds()),
        },
        "description": "Seconds the token stays valid.",
    }
}


def _items_of(properties: dict[str, Any]) -> dict[str, Any]:
    """A portal answer: ``{"items": [...]}`` of objects with exactly these properties (never a segment's)."""
    item = {"type": "object", "additionalProperties": False, "properties": properties}
    return {"type": "object", "properties": {"items": {"type": "array", "items": item}}}


_window = {"starts_at": {"type": "string"}, "ends_at": {"type": "string"}}
PORTAL_ANNOUNCEMENTS_SCHEMA = _items_of(
    {"id": {"type": "string"}, "title": {"type": "string"}, "body": {"type": "string"}, **_window}
)
PORTAL_CHALLENGES_SCHEMA = _items_of(
    {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": ["string", "null"]},
        "goal": {"type": "object"},
        "reward": {"type": "object"},
        "progress": {"type": "object"},
        **_window,
    }
)


def issue_token(
    ctx: TenantContext, reference: str, expires_in: str | None, clock: Clock = system_clock
) -> dict[str, str]:
    contact = resolve(ctx, reference)
    seconds = DEFAULT_LIFETIME.total_seconds() if expires_in is None else _lifetime(expires_in)
    expires = clock() + timedelta(seconds=seconds)
    payload = {"t": ctx.tenant_id, "c": contact.id, "exp": int(expires.timestamp())}
    token = tokens.seal(payload, purpose=tokens.PORTAL, secret=get_config().secret)
    return {"token": token, "expires_at": to_rfc3339(expires)}


def _lifetime(text: str) -> float:
    low, high = int(MIN_LIFETIME.total_seconds()), int(MAX_LIFETIME.total_seconds())
    return float(whole_number(text, "expires_in", low, high))


def _whose(ctx: TenantContext) -> tuple[str, Contact]:
    """The tenant and the contact a portal token stands for."""
    contact_id = ctx.principal.contact_id if ctx.principal else None
    contact = ctx.ports.contacts.get_contact(contact_id) if contact_id else None
    if contact is None:
        raise Unauthorized("The portal token's contact no longer exists.")
    return ctx.tenant_id, contact


def announcements(ctx: TenantContext, clock: Clock = system_clock) -> dict[str, Any]:
    """Those of the contact's segments, and those a trigger's ``announce`` action gave the contact."""
    _, contact = _whose(ctx)
    every = ctx.ports.engagements.all_of(rules.ANNOUNCEMENT)
    found = targeting(ctx, contact, every, clock)
    given = ctx.ports.triggers.personal_announcements(contact.id, contact.ordinal)
    now = clock()
    found += [
        a
        for a in every
        if a.id in given
        and a not in found
        and a.status == rules.ENABLED
        and rules.Window(a.starts_at, a.ends_at).is_open(now)
    ]
    return {
        "items": [
            {"id": a.id, "title": a.name, "body": a.body, "starts_at": a.starts_at, "ends_at": a.ends_at}
            for a in sorted(found, key=lambda a: a.starts_at, reverse=True)
        ]
    }


def challenges(ctx: TenantContext, clock: Clock = system_clock) -> dict[str, Any]:
    _, contact = _whose(ctx)
    found = targeting(ctx, contact, ctx.challenges, clock)
    events = ctx.ports.contacts.read_contact(contact.id)[1] if found else []
    items = []
    for challenge in sorted(found, key=lambda c: c.ends_at):
        assert challenge.goal is not None
        window = rules.Window(challenge.starts_at, challenge.ends_at)
        items.append(
            {
                "id": challenge.id,
                "name": challenge.name,
                "description": challenge.body,
                "starts_at": challenge.starts_at,
                "ends_at": challenge.ends_at,
                "goal": challenge.goal,
                "reward": challenge.reward,
                "progress": rules.progress(challenge.goal, window, events).view(),
            }
        )
    return {"items": items}
