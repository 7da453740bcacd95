"""Contacts, their tags and their events."""

from __future__ import annotations

from chalicelib.domain.contacts import CONTACT_SCHEMA, CREATE_CONTACT_SCHEMA, PATCH_CONTACT_SCHEMA
from chalicelib.domain.events import CONTACT_EVENTS_SCHEMA, EVENT_SCHEMA
from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call, WithStatus
from chalicelib.http.schemas import JOB_SCHEMA, list_of, page_of
from chalicelib.services import contacts, imports, segments

blueprint = ApiBlueprint(__name__)
_REF = "The contact's id (ctc_…) or its external_id."


@blueprint.operation(
    "POST",
    "/contacts",
    summary="Create a contact",
    access=Access.ADMIN,
    status=201,
    description="Tags must exist first (422 unknown_tags). Attributes are typed; see the README.",
    request_schema=CREATE_CONTACT_SCHEMA,
    response_schema=CONTACT_SCHEMA,
)
def create_contact(call: Call) -> dict:
    return contacts.create_contact(call.context, call.body)


@blueprint.operation(
    "GET",
    "/contacts",
    summary="List contacts, optionally with a tag and/or in a group, or those a search finds",
    access=Access.VIEWER,
    query={
        "q": {
            "schema": {"type": "string", "minLength": 1, "maxLength": segments.MAX_SEARCH_TEXT},
            "description": "Only contacts whose email, first or last name or external id starts with this (case "
            "ignored; 'Ana Lo' also finds first name Ana… and last name Lo…).",
        },
        "tag": {"schema": {"type": "string"}, "description": "Only contacts with this tag."},
        "group": {"schema": {"type": "string"}, "description": "Only contacts in this group."},
        **PAGE_QUERY,
    },
    response_schema=page_of(CONTACT_SCHEMA),
)
def list_contacts(call: Call) -> dict:
    if "q" in call.query:
        return segments.search_contacts(call.context, call.query, *call.page())
    return contacts.list_contacts(call.context, call.query, *call.page())


@blueprint.operation(
    "GET",
    "/contacts/{contact_id}",
    summary="Read a contact",
    description=_REF,
    access=Access.VIEWER,
    response_schema=CONTACT_SCHEMA,
)
def get_contact(call: Call, contact_id: str) -> dict:
    return contacts.get_contact(call.context, contact_id)


@blueprint.operation(
    "GET",
    "/contacts/{contact_id}/segments",
    summary="The segments the contact is a member of (their stored members; admins only)",
    description=_REF,
    access=Access.ADMIN,
    response_schema=list_of(
        {
            "type": "object",
            "required": ["id", "name"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "member_count": {"type": ["integer", "null"]},
            },
        }
    ),
    feature="segments",
    tag="segments",
)
def contact_segments(call: Call, contact_id: str) -> dict:
    return segments.contact_segments(call.context, contact_id)


@blueprint.operation(
    "PATCH",
    "/contacts/{contact_id}",
    summary="Change a contact (attributes merge; null removes one)",
    description=_REF,
    access=Access.ADMIN,
    request_schema=PATCH_CONTACT_SCHEMA,
    response_schema=CONTACT_SCHEMA,
)
def update_contact(call: Call, contact_id: str) -> dict:
    return contacts.update_contact(call.context, contact_id, call.body)


@blueprint.operation(
    "DELETE",
    "/contacts/{contact_id}",
    summary="Delete a contact and its events",
    description=_REF,
    access=Access.ADMIN,
    status=204,
)
def delete_contact(call: Call, contact_id: str) -> None:
    contacts.delete_contact(call.context, contact_id)


@blueprint.operation(
    "POST",
    "/contacts/{contact_id}/tags",
    summary="Add and remove tags on one contact",
    access=Access.ADMIN,
    request_schema=contacts.TAG_CHANGE_SCHEMA,
    response_schema=CONTACT_SCHEMA,
)
def change_tags(call: Call, contact_id: str) -> dict:
    return contacts.change_tags(call.context, contact_id, call.body)


@blueprint.operation(
    "POST",
    "/contacts/{contact_id}/events",
    summary="Append events (purchases and the like) to a contact",
    description="Give each event an id to make retries safe: an id is stored once.",
    access=Access.ADMIN,
    status=201,
    request_schema=CONTACT_EVENTS_SCHEMA,
    response_schema={"type": "object"},
)
def append_events(call: Call, contact_id: str) -> dict:
    return contacts.append_events(call.context, contact_id, call.body)


@blueprint.operation(
    "GET",
    "/contacts/{contact_id}/events",
    summary="A contact's events",
    access=Access.VIEWER,
    query=PAGE_QUERY,
    response_schema=page_of(EVENT_SCHEMA),
)
def list_events(call: Call, contact_id: str) -> dict:
    return contacts.list_events(call.context, contact_id, *call.page())


@blueprint.operation(
    "POST",
    "/events",
    summary="Append events for many contacts (each names contact_id or external_id)",
    access=Access.ADMIN,
    status=201,
    request_schema=contacts.BULK_EVENTS_SCHEMA,
    response_schema={"type": "object"},
)
def append_bulk_events(call: Call) -> dict:
    return contacts.append_bulk_events(call.context, call.body)


@blueprint.operation(
    "POST",
    "/contacts/import",
    summary="Import contacts from CSV or JSON Lines (up to 10,000 rows) as a job",
    description="Content-Type text/csv (header row; tags ';'-separated; attributes.<name> columns) or "
    "application/x-ndjson. Creates or updates by external_id, else email. Answers 202 with the job.",
    access=Access.ADMIN,
    status=202,
    request_schema={"type": "string"},
    content_types=imports.IMPORT_CONTENT_TYPES,
    response_schema=JOB_SCHEMA,
)
def import_contacts(call: Call) -> WithStatus:
    return WithStatus(202, imports.start_import(call.context, call.raw_body, call.content_type))
