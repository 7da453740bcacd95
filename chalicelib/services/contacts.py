"""Contacts: create, read, update, delete, tag, list, and their events."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalicelib.domain import attributes as attribute_rules
from chalicelib.domain import events as event_rules
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.contacts import (
    Contact,
    ContactChanges,
    StaleContact,
    TakenIdentifier,
    check_contact,
    contact_id_for,
    contact_ids_for,
    ordinal_of,
    shard_of,
)
from chalicelib.domain.errors import Conflict, LimitExceeded, NotFound, UnknownTags, ValidationFailed
from chalicelib.domain.tags import missing_tags, normalise_tag, normalise_tags
from chalicelib.domain.validation import validate
from chalicelib.ports.messages import ContactChanged
from chalicelib.services import shards
from chalicelib.services.changes import change_message, publish
from chalicelib.services.context import TenantContext
from chalicelib.services.paging import page

WRITE_ATTEMPTS = 10
MAX_EVENTS_BULK = event_rules.MAX_EVENTS_PER_REQUEST


def contact_view(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "external_id": contact.external_id,
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "group": contact.group,
        "tags": sorted(contact.tags),
        "attributes": contact.attributes,
        "version": contact.version,
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
    }


class TenantCatalog:
    """What a tenant has defined, read once per request or per import chunk."""

    def __init__(self, ctx: TenantContext) -> None:
        self.catalog = ctx.ports.catalog
        self.tags = self.catalog.usable_tag_names()
        self.attribute_types = self.catalog.attribute_types()
        self._groups: dict[str, str | None] = {}

    def require_tags(self, tags: list[str], field: str) -> None:
        unknown = missing_tags(tags, self.tags)
        if unknown:
            raise UnknownTags(
                field, f"Unknown tags: {', '.join(unknown)}. Create tags before using them.", tags=unknown
            )

    def group_id(self, reference: str | None, field: str = "group") -> str | None:
        """Resolve a group id (or, for imports, a group name) to an existing group's id."""
        if reference is None:
            return None
        if reference not in self._groups:
            group = self.catalog.get_group(reference) or self.catalog.find_group_by_name(reference)
            self._groups[reference] = group.id if group and not group.deleting else None
        if self._groups[reference] is None:
            raise ValidationFailed(field, f"Group {reference} does not exist.")
        return self._groups[reference]

    def register_types(self, introduced: dict[str, str], field: str) -> None:
        for name, kind in introduced.items():
            winner = self.catalog.register_attribute_type(name, kind)
            self.attribute_types[name] = winner
            if winner != kind:
                raise ValidationFailed(f"{field}.{name}", f"{field}.{name} must be of type {winner}.", expected=winner)


def resolve(ctx: TenantContext, reference: str) -> Contact:
    """Find a contact by id, or else by external_id."""
    store = ctx.ports.contacts
    contact = store.get_contact(reference) if ordinal_of(reference) is not None else None
    if contact is None:
        contact_id = store.find_contact_id(external_id=reference)
        contact = store.get_contact(contact_id) if contact_id else None
    if contact is None:
        raise NotFound(f"Contact {reference} does not exist.", {"field": "id"})
    return contact


def apply_changes(
    contact: Contact, changes: ContactChanges, add_tags: list[str], remove_tags: list[str], now: str
) -> Contact:
    """The contact after a change (the same object when nothing changes)."""
    fields = dict(changes.fields)
    tags = (contact.tags | set(add_tags)) - set(remove_tags)
    attributes = attribute_rules.merge(contact.attributes, changes.attributes)
    candidate = replace(
        contact,
        external_id=fields.get("external_id", contact.external_id),
        email=fields.get("email", contact.email),
        first_name=fields.get("first_name", contact.first_name),
        last_name=fields.get("last_name", contact.last_name),
        group=fields.get("group", contact.group),
        tags=frozenset(tags),
        attributes=attributes,
    )
    if candidate == contact:
        return contact
    return replace(candidate, version=contact.version + 1, updated_at=now)


def write(ctx: TenantContext, before: Contact | None, after: Contact | None, message: ContactChanged) -> None:
    """Write one contact change with the message that announces it (the outbox, in the same transaction)."""
    try:
        ctx.ports.contacts.write([(before, after)], [message])
    except TakenIdentifier as taken:
        raise Conflict(f"Another contact already has this {taken.field}.", {"field": taken.field}) from None


def _checked(ctx: TenantContext, body: Any, *, creating: bool, known: TenantCatalog) -> ContactChanges:
    changes = check_contact(body, known.attribute_types, creating=creating)
    known.require_tags(changes.tags, "tags")
    if "group" in changes.fields:
        changes.fields["group"] = known.group_id(changes.fields["group"])
    known.register_types(changes.new_attribute_types, "attributes")
    return changes


def create_contact(ctx: TenantContext, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    tenant_id = ctx.tenant_id
    changes = _checked(ctx, body, creating=True, known=TenantCatalog(ctx))
    now = to_rfc3339(clock())
    ordinal = ctx.ports.contacts.allocate_ordinals(1)
    blank = Contact(id=contact_id_for(ordinal), ordinal=ordinal, version=0, created_at=now, updated_at=now)
    contact = apply_changes(blank, changes, changes.tags, [], now)
    message = change_message(tenant_id, None, contact, "created")
    write(ctx, None, contact, message)
    publish(ctx, [message])
    return contact_view(contact)


def get_contact(ctx: TenantContext, reference: str) -> dict[str, Any]:
    return contact_view(resolve(ctx, reference))


def backoff(attempt: int) -> None:
    """Jittered wait before retrying a write that lost a race."""
    time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 5)))


def rewrite_contact(
    ctx: TenantContext,
    load: Callable[[], Contact | None],
    compute: Callable[[Contact, str], Contact],
    change: str,
    source: str = "api",
    clock: Clock = system_clock,
    depth: int = 0,
) -> tuple[Contact | None, Contact | None]:
    """Read, compute the new state, write conditioned on the version, publish the change.

    Retries with backoff when someone else wrote first. Returns (before, after):
    ``after is before`` when nothing changed, (None, None) when ``load`` finds nothing.
    """
    for attempt in range(WRITE_ATTEMPTS):
        before = load()
        if before is None:
            return None, None
        after = compute(before, to_rfc3339(clock()))
        if after is before:
            return before, before
        message = change_message(ctx.tenant_id, before, after, change, source, depth=depth)
        try:
            write(ctx, before, after, message)
        except StaleContact:
            backoff(attempt)
            continue
        publish(ctx, [message])
        return before, after
    raise Conflict("The contact kept changing while this update was applied; try again.")


def _rewrite_reference(
    ctx: TenantContext, reference: str, compute: Callable[[Contact, str], Contact], change: str, clock: Clock
) -> Contact:
    _, after = rewrite_contact(ctx, lambda: resolve(ctx, reference), compute, change, clock=clock)
    assert after is not None  # resolve raises NotFound rather than returning None
    return after


def update_contact(ctx: TenantContext, reference: str, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    known = TenantCatalog(ctx)
    validate(body, {"type": "object", "minProperties": 1})
    changes = _checked(ctx, body, creating=False, known=known)

    def compute(before: Contact, now: str) -> Contact:
        after = apply_changes(before, changes, [], [], now)
        if not (after.email or after.external_id):
            raise ValidationFailed("email", "A contact needs an email or an external_id.")
        return after

    return contact_view(_rewrite_reference(ctx, reference, compute, "updated", clock))


def change_tags(ctx: TenantContext, reference: str, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, TAG_CHANGE_SCHEMA)
    add = normalise_tags(body.get("add", []), "add")
    remove = normalise_tags(body.get("remove", []), "remove")
    both = sorted(set(add) & set(remove))
    if both:
        raise ValidationFailed("remove", f"Tags both added and removed: {', '.join(both)}.")
    known = TenantCatalog(ctx)
    known.require_tags(add, "add")
    known.require_tags(remove, "remove")
    empty = ContactChanges()

    def compute(before: Contact, now: str) -> Contact:
        return apply_changes(before, empty, add, remove, now)

    return contact_view(_rewrite_reference(ctx, reference, compute, "tags", clock))


TAG_CHANGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "add": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
        "remove": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
    },
}


def delete_contact(ctx: TenantContext, reference: str) -> None:
    for attempt in range(WRITE_ATTEMPTS):
        contact = resolve(ctx, reference)
        message = change_message(ctx.tenant_id, contact, None, "deleted")
        try:
            ctx.ports.contacts.write([(contact, None)], [message])
        except StaleContact:
            backoff(attempt)
            continue
        ctx.ports.contacts.delete_contact_records(contact)
        publish(ctx, [message])
        return
    raise Conflict("The contact kept changing while it was deleted; try again.")


def list_filters(ctx: TenantContext, query: dict[str, str]) -> tuple[str | None, str | None]:
    """The ``tag`` and ``group`` a contact listing keeps to, each checked to exist."""
    tag = normalise_tag(query["tag"], "tag") if query.get("tag") else None
    group = query.get("group") or None
    if tag is not None and ctx.ports.catalog.get_tag(tag) is None:
        raise UnknownTags("tag", f"Unknown tag: {tag}.", tags=[tag])
    if group is not None and ctx.ports.catalog.get_group(group) is None:
        raise ValidationFailed("group", f"Group {group} does not exist.")
    return tag, group


def list_contacts(ctx: TenantContext, query: dict[str, str], limit: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = ctx.tenant_id
    tag, group = list_filters(ctx, query)
    if tag is not None:

        def fetch(position: dict[str, Any] | None) -> tuple[list[Contact], dict[str, Any] | None]:
            return _page_of_tag(ctx, tag, group, limit, position)

    elif group is not None:

        def fetch(position: dict[str, Any] | None) -> tuple[list[Contact], dict[str, Any] | None]:
            return ctx.ports.contacts.page_of_group(group, limit, position)

    else:

        def fetch(position: dict[str, Any] | None) -> tuple[list[Contact], dict[str, Any] | None]:
            return ctx.ports.contacts.page_of_shards(limit, position)

    return page(f"contacts:{tenant_id}:{tag}:{group}", cursor, fetch, contact_view)


def _page_of_tag(
    ctx: TenantContext, tag: str, group: str | None, limit: int, position: dict[str, Any] | None
) -> tuple[list[Contact], dict[str, Any] | None]:
    """Walk the tag's posting list in ordinal order (optionally keeping one group's members)."""
    after = int((position or {}).get("after", 0))
    ordinals = sorted(o for o in ctx.ports.contacts.tag_ordinals(tag) if o > after)
    found: list[Contact] = []
    index = 0
    while index < len(ordinals) and len(found) < limit:
        window = ordinals[index : index + 100]
        batch = ctx.ports.contacts.get_contacts(contact_ids_for(window))
        for ordinal in window:
            contact = batch.get(contact_id_for(ordinal))
            index += 1
            if contact and (group is None or contact.group == group):
                found.append(contact)
                if len(found) == limit:
                    break
    if index >= len(ordinals):
        return found, None
    return found, {"after": ordinals[index - 1]}


# events


def append_events(ctx: TenantContext, reference: str, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, event_rules.CONTACT_EVENTS_SCHEMA)
    now = clock()
    events = [event_rules.check_event(raw, now, f"events[{i}]") for i, raw in enumerate(body["events"])]
    contact = resolve(ctx, reference)
    publish(ctx, _store_events(ctx, [(contact, events)]))
    return {"contact_id": contact.id, "stored": len(events), "event_ids": [e["id"] for e in events]}


def record_events(ctx: TenantContext, events_by_contact: dict[str, list[dict[str, Any]]]) -> int:
    """Events the service itself observed for contacts (already checked, with ids of their own, so a repeat
    overwrites itself), stored together; how many contacts exist to take them (those gone are left out)."""
    contacts = ctx.ports.contacts.get_contacts(events_by_contact) if events_by_contact else {}
    per_contact = [(contact, events_by_contact[contact.id]) for contact in contacts.values()]
    if per_contact:
        publish(ctx, _store_events(ctx, per_contact))
    return len(per_contact)


BULK_EVENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["events"],
    "properties": {
        "events": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_EVENTS_BULK,
            "items": event_rules.EVENT_SCHEMA,
        }
    },
}


def append_bulk_events(ctx: TenantContext, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    """Events for many contacts; all are checked (and their contacts found, in batches) before any is stored."""
    if isinstance(body, dict) and isinstance(body.get("events"), list) and len(body["events"]) > MAX_EVENTS_BULK:
        raise LimitExceeded("events", f"At most {MAX_EVENTS_BULK} events a request.", limit=MAX_EVENTS_BULK)
    validate(body, BULK_EVENTS_SCHEMA)
    now = clock()
    checked = []
    for index, raw in enumerate(body["events"]):
        field = f"events[{index}]"
        event = event_rules.check_event(raw, now, field, allow_contact_ref=True)
        reference = raw.get("contact_id") or raw.get("external_id")
        if not reference:
            raise ValidationFailed(f"{field}.contact_id", f"{field} needs a contact_id or an external_id.")
        checked.append((field, reference, event))
    contacts = _resolve_many(ctx, {reference for _, reference, _ in checked})
    per_contact: dict[str, tuple[Contact, list[dict[str, Any]]]] = {}
    for field, reference, event in checked:
        if reference not in contacts:
            raise ValidationFailed(f"{field}.contact_id", f"{field}: contact {reference} does not exist.")
        contact = contacts[reference]
        per_contact.setdefault(contact.id, (contact, []))[1].append(event)
    publish(ctx, _store_events(ctx, list(per_contact.values())))
    shards.compact_after_bulk_write(ctx, len(per_contact), (shard_of(c.ordinal) for c, _ in per_contact.values()))
    return {"stored": len(checked), "contacts": len(per_contact)}


def _resolve_many(ctx: TenantContext, references: set[str]) -> dict[str, Contact]:
    """Contacts by id or external_id, with batched reads."""
    store = ctx.ports.contacts
    by_id = {ref: ref for ref in references if ordinal_of(ref) is not None}
    found, _ = store.find_contact_ids_many(external_ids=sorted(references - set(by_id)))
    by_id.update(found)
    contacts = store.get_contacts(by_id.values())
    resolved = {ref: contacts[cid] for ref, cid in by_id.items() if cid in contacts}
    missing_ids = [ref for ref in references if ordinal_of(ref) is not None and ref not in resolved]
    if missing_ids:  # an external_id may look like a contact id
        found, _ = store.find_contact_ids_many(external_ids=missing_ids)
        fallback = store.get_contacts(found.values())
        resolved.update({ref: fallback[cid] for ref, cid in found.items() if cid in fallback})
    return resolved


def _store_events(ctx: TenantContext, per_contact: list[tuple[Contact, list[dict[str, Any]]]]) -> list[ContactChanged]:
    """Store each contact's events (batched across contacts); return the change messages to publish, one a
    contact. Event writes are not a transaction, so the messages go to the outbox first: a stop in between
    leaves a message to relay, never a change nobody hears of."""
    messages = [
        change_message(ctx.tenant_id, contact, contact, "events", events=events) for contact, events in per_contact
    ]
    ctx.ports.outbox.put(messages)
    ctx.ports.contacts.put_events_many(
        [(contact, events, [event_rules.expires_at(e) for e in events]) for contact, events in per_contact]
    )
    return messages


def list_events(ctx: TenantContext, reference: str, limit: int, cursor: str | None) -> dict[str, Any]:
    contact = resolve(ctx, reference)
    scope = f"events:{ctx.tenant_id}:{contact.id}"
    return page(scope, cursor, lambda start: ctx.ports.contacts.events_of(contact, limit, start))
