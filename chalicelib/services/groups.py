"""Groups: a contact is in at most one. Deleting a group in use asks for confirmation;
confirmed, its members are left without a group (as a job), then the group goes."""

from __future__ import annotations

from functools import partial
from typing import Any

from chalicelib.domain.catalog import AlreadyExists, Group
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.contacts import Contact, ContactChanges
from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.domain.ids import new_id
from chalicelib.domain.jobs import Job
from chalicelib.domain.validation import validate
from chalicelib.services import dependents, jobs
from chalicelib.services.contacts import apply_changes, rewrite_contact
from chalicelib.services.context import TenantContext
from chalicelib.services.paging import page

JOB_CHUNK = 250
_name = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"}
_description = {"type": ["string", "null"], "maxLength": 500}
CREATE_GROUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {"name": _name, "description": _description},
}
PATCH_GROUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {"name": _name, "description": _description},
}
GROUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": ["string", "null"]},
        "member_count": {"type": "integer"},
        "created_at": {"type": "string"},
        "status": {"enum": ["active", "deleting"]},
    },
}


def _view(group: Group, member_count: int | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "created_at": group.created_at,
        "status": "deleting" if group.deleting else "active",
    }
    if member_count is not None:
        view["member_count"] = member_count
    return view


def _require(ctx: TenantContext, group_id: str) -> Group:
    group = ctx.ports.catalog.get_group(group_id)
    if group is None:
        raise NotFound(f"Group {group_id} does not exist.", {"field": "id"})
    return group


def _member_ids(ctx: TenantContext, group_id: str) -> list[str]:
    members, position = [], None
    while True:
        page, position = ctx.ports.contacts.page_of_group(group_id, 500, position)
        members += [contact.id for contact in page]
        if position is None:
            return members


def create_group(ctx: TenantContext, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, CREATE_GROUP_SCHEMA)
    group = Group(new_id("group"), body["name"].strip(), body.get("description"), to_rfc3339(clock()))
    try:
        ctx.ports.catalog.create_group(group)
    except AlreadyExists:
        raise Conflict(f"A group named {group.name!r} already exists.", {"field": "name"}) from None
    return _view(group, 0)


def get_group(ctx: TenantContext, group_id: str) -> dict[str, Any]:
    group = _require(ctx, group_id)
    return _view(group, len(_member_ids(ctx, group.id)))


def list_groups(ctx: TenantContext, limit: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = ctx.tenant_id
    return page(f"groups:{tenant_id}", cursor, lambda start: ctx.ports.catalog.list_groups(limit, start), _view)


def update_group(ctx: TenantContext, group_id: str, body: Any) -> dict[str, Any]:
    validate(body, PATCH_GROUP_SCHEMA)
    before = _require(ctx, group_id)
    after = Group(
        before.id,
        body["name"].strip() if "name" in body else before.name,
        body.get("description", before.description),
        before.created_at,
    )
    try:
        ctx.ports.catalog.update_group(before, after)
    except AlreadyExists:
        raise Conflict(f"A group named {after.name!r} already exists.", {"field": "name"}) from None
    return _view(after)


def delete_group(ctx: TenantContext, group_id: str, confirm: bool) -> dict[str, Any] | None:
    group = _require(ctx, group_id)
    members = _member_ids(ctx, group.id)
    dependents.review("group", ctx, group.id, f"group {group.name!r}", confirm, impact={"member_count": len(members)})
    ctx.ports.catalog.mark_group_deleting(group.id)
    dependents.release("group", ctx, group.id, f"group {group.name!r} ({group.id}) was deleted")
    if not members:
        ctx.ports.catalog.delete_group(group)
        return None
    chunks = [{"group": group.id, "contact_ids": members[i : i + JOB_CHUNK]} for i in range(0, len(members), JOB_CHUNK)]
    return jobs.start_job(ctx, "group_delete", chunks, total=len(members), detail={"group": group.id})


def _clear_group(ctx: TenantContext, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    leave = ContactChanges(fields={"group": None})

    def release(contact: Contact, now: str) -> Contact:
        return contact if contact.group != payload["group"] else apply_changes(contact, leave, [], [], now)

    updated = 0
    for contact_id in payload["contact_ids"]:
        before, after = rewrite_contact(
            ctx, partial(ctx.ports.contacts.get_contact, contact_id), release, "updated", f"job:{job_id}"
        )
        updated += after is not before
    return {"counts": {"updated": updated, "unchanged": len(payload["contact_ids"]) - updated}}


def _finish_group_delete(ctx: TenantContext, job: Job) -> None:
    group = ctx.ports.catalog.get_group(job.detail["group"])
    if group is not None:
        ctx.ports.catalog.delete_group(group)


JOB_KINDS = {"group_delete": jobs.JobKind(_clear_group, on_success=_finish_group_delete)}
