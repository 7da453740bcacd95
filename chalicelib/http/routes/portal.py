"""The contact portal: tokens issued by admins, and the routes those tokens open (services/portal.py)."""

from __future__ import annotations

from chalicelib.http.api import Access, ApiBlueprint, Call
from chalicelib.services import portal

blueprint = ApiBlueprint(__name__)
FEATURE = {"feature": "segments", "tag": "portal"}


@blueprint.operation(
    "POST", "/contacts/{contact_id}/portal-tokens", summary="Issue a signed, expiring portal token for a contact",
    description="The token opens only the `/portal/*` routes, for this contact, until `expires_at`.",
    access=Access.ADMIN, status=201, query=portal.TOKEN_QUERY, response_schema=portal.TOKEN_SCHEMA, **FEATURE,
)  # fmt: skip
def issue_portal_token(call: Call, contact_id: str) -> dict:
    return portal.issue_token(call.context, contact_id, call.query.get("expires_in"))


@blueprint.operation(
    "GET", "/portal/announcements", summary="The announcements showing to this contact now",
    access=Access.PORTAL, response_schema=portal.PORTAL_ANNOUNCEMENTS_SCHEMA, **FEATURE,
)  # fmt: skip
def portal_announcements(call: Call) -> dict:
    return portal.announcements(call.context)


@blueprint.operation(
    "GET", "/portal/challenges", summary="The active challenges of this contact, with its progress",
    access=Access.PORTAL, response_schema=portal.PORTAL_CHALLENGES_SCHEMA, **FEATURE,
)  # fmt: skip
def portal_challenges(call: Call) -> dict:
    return portal.challenges(call.context)
