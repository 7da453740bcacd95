"""Announcements, challenges and each contact's rewards (services/engagements.py)."""

from __future__ import annotations

from chalicelib.domain.engagements import ANNOUNCEMENT, CHALLENGE
from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call
from chalicelib.http.routes.segments import FEATURE as SEGMENTS_FEATURE
from chalicelib.http.schemas import CONFIRM_QUERY, page_of
from chalicelib.services import engagements

blueprint = ApiBlueprint(__name__)


def _crud(kind: str, description: str) -> None:
    """The five routes of one kind (announcements or challenges), declared once."""
    plural, key = f"{kind}s", f"{kind}_id"
    schemas = engagements.SCHEMAS[kind]
    feature = {**SEGMENTS_FEATURE, "tag": plural}
    one = f"/{plural}/{{{key}}}"

    article = "an" if kind[0] in "aeiou" else "a"

    def create(call: Call) -> dict:
        return engagements.create(call.context, kind, call.body)

    def listing(call: Call) -> dict:
        return engagements.list_page(call.context, kind, *call.page())

    def read(call: Call, **ids: str) -> dict:
        return engagements.get(call.context, kind, ids[key])

    def edit(call: Call, **ids: str) -> dict:
        return engagements.update(call.context, kind, ids[key], call.body)

    def remove(call: Call, **ids: str) -> None:
        engagements.delete(call.context, kind, ids[key], call.flag("confirm"))

    routes = [
        (create, "create", dict(method="POST", path=f"/{plural}", summary=f"Create {article} {kind}",
         description=description, access=Access.ADMIN, status=201, request_schema=schemas["create"],
         response_schema=schemas["view"])),
        (listing, "list", dict(method="GET", path=f"/{plural}", summary=f"List {plural}", access=Access.VIEWER,
         query=PAGE_QUERY, response_schema=page_of(schemas["view"]))),
        (read, "get", dict(method="GET", path=one, summary=f"One {kind}, with whether it is active now",
         access=Access.VIEWER, response_schema=schemas["view"])),
        (edit, "update", dict(method="PATCH", path=one, summary=f"Edit {article} {kind}", access=Access.ADMIN,
         request_schema=schemas["patch"], response_schema=schemas["view"])),
        (remove, "delete", dict(method="DELETE", path=one, summary=f"Delete {article} {kind} (409 "
         "confirmation_required listing what uses it, unless ?confirm=true)", access=Access.ADMIN, status=204,
         query=CONFIRM_QUERY)),
    ]  # fmt: skip
    for handler, verb, declaration in routes:
        handler.__name__ = handler.__qualname__ = f"{verb}_{kind}"
        blueprint.operation(**declaration, **feature)(handler)


_crud(
    ANNOUNCEMENT,
    "Shown in the contact portal (`GET /portal/announcements`) to the members of its segments while "
    "`starts_at` ≤ now < `ends_at`.",
)
_crud(
    CHALLENGE,
    "A goal the members of its segments work towards inside the window: `count` events of `event_type`, or a "
    "total `amount` over them. Its reward is written to a contact's ledger once, when the goal is reached.",
)


@blueprint.operation(
    "GET", "/contacts/{contact_id}/rewards", summary="A contact's rewards ledger, with totals per currency",
    access=Access.VIEWER, query=PAGE_QUERY, response_schema=engagements.REWARDS_SCHEMA, **SEGMENTS_FEATURE,
)  # fmt: skip
def contact_rewards(call: Call, contact_id: str) -> dict:
    return engagements.rewards_of(call.context, contact_id, *call.page())
