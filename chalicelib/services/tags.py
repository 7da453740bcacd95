"""Tags: define, describe, count, apply in bulk, delete with review."""

from __future__ import annotations

from functools import partial
from typing import Any

from chalicelib.domain.catalog import AlreadyExists, Tag
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.contacts import Contact, ContactChanges, StaleContact, contact_ids_for, ordinal_of, shard_of
from chalicelib.domain.errors import (
    Conflict,
    LimitExceeded,
    NotFound,
    UnknownTags,
    ValidationFailed,
)
from chalicelib.domain.jobs import Job
from chalicelib.domain.tags import CREATE_TAG_SCHEMA, PATCH_TAG_SCHEMA, normalise_tag
from chalicelib.domain.validation import validate
from chalicelib.services import dependents, jobs, shards
from chalicelib.services.changes import change_message, publish
from chalicelib.services.contacts import apply_changes, rewrite_contact
from chalicelib.services.context import TenantContext
from chalicelib.services.paging import page

MAX_BULK = 10_000
INLINE_BULK = 250
"""Bulk requests up to this size are applied before answering; larger ones run as a job."""
JOB_CHUNK = 250

BULK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["contact_ids"],
    "properties": {"contact_ids": {"type": "array", "minItems": 1, "maxItems": MAX_BULK, "items": {"type": "string"}}},
}


def _view(ctx: TenantContext, tag: Tag, with_usage: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": tag.name,
        "description": tag.description,
        "contact_count": ctx.ports.contacts.count_tag(tag.name),
        "created_at": tag.created_at,
        "status": "deleting" if tag.deleting else "active",
    }
    if with_usage:
        view["used_by"] = dependents.find("tag", ctx, tag.name)
    return view


def _require(ctx: TenantContext, name: str, field: str = "name") -> Tag:
    tag = ctx.ports.catalog.get_tag(normalise_tag(name, field))
    if tag is None:
        raise NotFound(f"Tag {name} does not exist.", {"field": field})
    return tag


def create_tag(ctx: TenantContext, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, CREATE_TAG_SCHEMA)
    tag = Tag(normalise_tag(body["name"], "name"), body.get("description"), to_rfc3339(clock()))
    try:
        ctx.ports.catalog.create_tag(tag)
    except AlreadyExists:
        raise Conflict(f"Tag {tag.name} already exists (names are case-insensitive).", {"field": "name"}) from None
    return _view(ctx, tag)


def get_tag(ctx: TenantContext, name: str) -> dict[str, Any]:
    return _view(ctx, _require(ctx, name), with_usage=True)


def list_tags(ctx: TenantContext, limit: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = ctx.tenant_id
    return page(
        f"tags:{tenant_id}",
        cursor,
        lambda start: ctx.ports.catalog.list_tags(limit, start),
        lambda t: _view(ctx, t),
    )


def update_tag(ctx: TenantContext, name: str, body: Any) -> dict[str, Any]:
    validate(body, PATCH_TAG_SCHEMA)
    tag = _require(ctx, name)
    ctx.ports.catalog.update_tag_description(tag.name, body["description"])
    return _view(ctx, _require(ctx, tag.name))


def delete_tag(ctx: TenantContext, name: str, confirm: bool) -> dict[str, Any] | None:
    """Delete a tag. Asks for confirmation when segments use it or contacts carry it.

    Confirmed: the tag stops being usable at once; contacts lose it (as a job when
    there are any), then the tag goes.
    """
    tag = _require(ctx, name)
    carriers = ctx.ports.contacts.count_tag(tag.name)
    dependents.review("tag", ctx, tag.name, f"tag {tag.name}", confirm, impact={"contact_count": carriers})
    ctx.ports.catalog.mark_tag_deleting(tag.name)
    dependents.release("tag", ctx, tag.name, f"tag {tag.name} was deleted")
    ordinals = sorted(ctx.ports.contacts.tag_ordinals(tag.name))
    if not ordinals:
        ctx.ports.catalog.delete_tag(tag.name)
        return None
    chunks = [
        {"tag": tag.name, "contact_ids": contact_ids_for(ordinals[i : i + JOB_CHUNK]), "add": False}
        for i in range(0, len(ordinals), JOB_CHUNK)
    ]
    return jobs.start_job(ctx, "tag_delete", chunks, total=len(ordinals), detail={"tag": tag.name})


def _finish_tag_delete(ctx: TenantContext, job: Job) -> None:
    ctx.ports.catalog.delete_tag(job.detail["tag"])


def bulk_tag(ctx: TenantContext, name: str, body: Any, add: bool) -> tuple[int, dict[str, Any]]:
    """Tag (or untag) up to 10,000 contacts. Returns (status, body): 200 inline or 202 with a job."""
    if isinstance(body, dict) and isinstance(body.get("contact_ids"), list) and len(body["contact_ids"]) > MAX_BULK:
        raise LimitExceeded("contact_ids", f"At most {MAX_BULK} contacts a request.", limit=MAX_BULK)
    validate(body, BULK_SCHEMA)
    tag_name = normalise_tag(name, "name")
    tag = ctx.ports.catalog.get_tag(tag_name)
    if tag is None or tag.deleting:
        raise UnknownTags("name", f"Unknown tag: {tag_name}. Create tags before using them.", tags=[tag_name])
    contact_ids = list(dict.fromkeys(body["contact_ids"]))
    _require_contacts(ctx, contact_ids)
    if len(contact_ids) <= INLINE_BULK:
        counts = retag(ctx, tag_name, contact_ids, add, source="api")
        return 200, {"tag": tag_name, "action": "add" if add else "remove", "requested": len(contact_ids), **counts}
    chunks = [
        {"tag": tag_name, "contact_ids": contact_ids[i : i + JOB_CHUNK], "add": add}
        for i in range(0, len(contact_ids), JOB_CHUNK)
    ]
    kind = "bulk_tag" if add else "bulk_untag"
    return 202, jobs.start_job(ctx, kind, chunks, total=len(contact_ids), detail={"tag": tag_name})


def _require_contacts(ctx: TenantContext, contact_ids: list[str]) -> None:
    malformed = [cid for cid in contact_ids if ordinal_of(cid) is None]
    well_formed = [cid for cid in contact_ids if ordinal_of(cid) is not None]
    found = set(ctx.ports.contacts.get_contacts(well_formed))
    unknown = malformed + [cid for cid in well_formed if cid not in found]
    if unknown:
        raise ValidationFailed(
            "contact_ids", f"{len(unknown)} contact id(s) do not exist; nothing was changed.", unknown=unknown[:50]
        )


def retag(ctx: TenantContext, tag: str, contact_ids: list[str], add: bool, source: str) -> dict[str, int]:
    """Add or remove one tag on many contacts: batched, version-checked, each change published once."""
    store = ctx.ports.contacts
    contacts = store.get_contacts(contact_ids)
    pairs, unchanged = [], 0
    for contact in contacts.values():
        after = _toggled(contact, tag, add, to_rfc3339(system_clock()))
        if after is contact:
            unchanged += 1
        else:
            pairs.append((contact, after))
    changed = 0
    for batch in store.transaction_batches(pairs):
        messages = [change_message(ctx.tenant_id, before, after, "tags", source) for before, after in batch]
        try:
            store.write(batch, messages)
        except StaleContact:
            # someone changed one of these meanwhile: redo them one by one
            for before, _ in batch:
                assert before is not None  # retagging changes contacts that exist
                old, new = rewrite_contact(
                    ctx,
                    partial(store.get_contact, before.id),
                    lambda contact, now: _toggled(contact, tag, add, now),
                    "tags",
                    source,
                )
                changed += new is not old
                unchanged += new is old
            continue
        changed += len(batch)
        publish(ctx, messages)
    shards.compact_after_bulk_write(ctx, len(pairs), (shard_of(contact.ordinal) for contact, _ in pairs))
    return {"changed": changed, "unchanged": unchanged, "missing": len(contact_ids) - len(contacts)}


def _toggled(contact: Contact, tag: str, add: bool, now: str) -> Contact:
    return apply_changes(contact, ContactChanges(), [tag] if add else [], [] if add else [tag], now)


def _retag_chunk(ctx: TenantContext, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    counts = retag(ctx, payload["tag"], payload["contact_ids"], payload["add"], source=f"job:{job_id}")
    return {"counts": {"updated": counts["changed"], "unchanged": counts["unchanged"] + counts["missing"]}}


JOB_KINDS = {
    "bulk_tag": jobs.JobKind(_retag_chunk),
    "bulk_untag": jobs.JobKind(_retag_chunk),
    "tag_delete": jobs.JobKind(_retag_chunk, on_success=_finish_tag_delete),
}
