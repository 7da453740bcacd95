"""Groups: a contact is in at most one."""

from __future__ import annotations

from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call, WithStatus
from chalicelib.http.schemas import CONFIRM_QUERY, page_of
from chalicelib.services import groups

blueprint = ApiBlueprint(__name__)


@blueprint.operation(
    "POST",
    "/groups",
    summary="Create a group (names are unique, case-insensitively)",
    access=Access.ADMIN,
    status=201,
    request_schema=groups.CREATE_GROUP_SCHEMA,
    response_schema=groups.GROUP_SCHEMA,
)
def create_group(call: Call) -> dict:
    return groups.create_group(call.context, call.body)


@blueprint.operation(
    "GET",
    "/groups",
    summary="List groups",
    access=Access.VIEWER,
    query=PAGE_QUERY,
    response_schema=page_of(groups.GROUP_SCHEMA),
)
def list_groups(call: Call) -> dict:
    return groups.list_groups(call.context, *call.page())


@blueprint.operation(
    "GET",
    "/groups/{group_id}",
    summary="A group and its member count",
    access=Access.VIEWER,
    response_schema=groups.GROUP_SCHEMA,
)
def get_group(call: Call, group_id: str) -> dict:
    return groups.get_group(call.context, group_id)


@blueprint.operation(
    "PATCH",
    "/groups/{group_id}",
    summary="Rename or describe a group",
    access=Access.ADMIN,
    request_schema=groups.PATCH_GROUP_SCHEMA,
    response_schema=groups.GROUP_SCHEMA,
)
def update_group(call: Call, group_id: str) -> dict:
    return groups.update_group(call.context, group_id, call.body)


@blueprint.operation(
    "DELETE",
    "/groups/{group_id}",
    summary="Delete a group (409 confirmation_required when it has members)",
    description="With ?confirm=true its members are left without a group (a job: 202), then it goes.",
    access=Access.ADMIN,
    status=204,
    query=CONFIRM_QUERY,
    other_responses={202: "Members are being released: the job."},
)
def delete_group(call: Call, group_id: str) -> WithStatus | None:
    job = groups.delete_group(call.context, group_id, call.flag("confirm"))
    return WithStatus(202, job) if job else None
