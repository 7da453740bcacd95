"""Tags: definitions, counts, bulk tagging."""

from __future__ import annotations

from chalicelib.domain.tags import CREATE_TAG_SCHEMA, PATCH_TAG_SCHEMA
from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call, WithStatus
from chalicelib.http.schemas import CONFIRM_QUERY, page_of
from chalicelib.services import tags

blueprint = ApiBlueprint(__name__)
TAG_SCHEMA = {
    "type": "object",
    "required": ["name", "contact_count"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": ["string", "null"]},
        "contact_count": {"type": "integer"},
        "used_by": {"type": "array", "items": {"type": "object"}},
        "status": {"enum": ["active", "deleting"]},
    },
}


@blueprint.operation(
    "POST",
    "/tags",
    summary="Create a tag (names are case-insensitive)",
    access=Access.ADMIN,
    status=201,
    request_schema=CREATE_TAG_SCHEMA,
    response_schema=TAG_SCHEMA,
)
def create_tag(call: Call) -> dict:
    return tags.create_tag(call.context, call.body)


@blueprint.operation(
    "GET",
    "/tags",
    summary="List tags with their contact counts",
    access=Access.VIEWER,
    query=PAGE_QUERY,
    response_schema=page_of(TAG_SCHEMA),
)
def list_tags(call: Call) -> dict:
    return tags.list_tags(call.context, *call.page())


@blueprint.operation(
    "GET",
    "/tags/{name}",
    summary="A tag, its contact count and the segments that use it",
    access=Access.VIEWER,
    response_schema=TAG_SCHEMA,
)
def get_tag(call: Call, name: str) -> dict:
    return tags.get_tag(call.context, name)


@blueprint.operation(
    "PATCH",
    "/tags/{name}",
    summary="Describe a tag",
    access=Access.ADMIN,
    request_schema=PATCH_TAG_SCHEMA,
    response_schema=TAG_SCHEMA,
)
def update_tag(call: Call, name: str) -> dict:
    return tags.update_tag(call.context, name, call.body)


@blueprint.operation(
    "DELETE",
    "/tags/{name}",
    summary="Delete a tag (409 confirmation_required when it is in use)",
    description="With ?confirm=true the tag is removed from its contacts (a job when there are any: 202) "
    "and then deleted; segments that use it become invalid and say why (their criteria stay for review).",
    access=Access.ADMIN,
    status=204,
    query=CONFIRM_QUERY,
    other_responses={202: "Contacts are being untagged: the job."},
)
def delete_tag(call: Call, name: str) -> WithStatus | None:
    job = tags.delete_tag(call.context, name, call.flag("confirm"))
    return WithStatus(202, job) if job else None


@blueprint.operation(
    "POST",
    "/tags/{name}/contacts",
    summary="Tag up to 10,000 contacts",
    description="Up to 250 ids are applied before answering (200); more run as a job (202).",
    access=Access.ADMIN,
    request_schema=tags.BULK_SCHEMA,
    response_schema={"type": "object"},
    other_responses={202: "The job that applies the tag."},
)
def bulk_tag(call: Call, name: str) -> WithStatus:
    return WithStatus(*tags.bulk_tag(call.context, name, call.body, add=True))


@blueprint.operation(
    "DELETE",
    "/tags/{name}/contacts",
    summary="Untag up to 10,000 contacts",
    access=Access.ADMIN,
    request_schema=tags.BULK_SCHEMA,
    response_schema={"type": "object"},
    other_responses={202: "The job that removes the tag."},
)
def bulk_untag(call: Call, name: str) -> WithStatus:
    return WithStatus(*tags.bulk_tag(call.context, name, call.body, add=False))
