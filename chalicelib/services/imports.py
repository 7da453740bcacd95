"""Contact imports: CSV or JSON Lines, up to 10,000 rows, as a job.

Each row creates a contact or updates the one with the same ``external_id``
(else the same email). Tags listed on a row are added (existing tags stay);
empty CSV cells leave fields as they are. A row that breaks a rule is reported
with its line number and reason; the other rows still land. Running the same
file again changes nothing: rows that match what is stored count as unchanged
and publish no change.
"""

from __future__ import annotations

from typing import Any

from chalicelib.domain import attributes as attribute_rules
from chalicelib.domain.clock import system_clock, to_rfc3339
from chalicelib.domain.contacts import check_contact, contact_id_for
from chalicelib.domain.emails import normalise_email
from chalicelib.domain.errors import AppError, ValidationFailed
from chalicelib.domain.imports import parse_import
from chalicelib.domain.tags import normalise_tags
from chalicelib.services import jobs
from chalicelib.services.changes import change_message, publish
from chalicelib.services.contacts import TenantCatalog, apply_changes
from chalicelib.services.principal import Principal
from chalicelib.storage import contacts as store
from chalicelib.storage.contacts import Contact

ROWS_PER_CHUNK = 250
ORDINAL_BLOCK = 50
IMPORT_CONTENT_TYPES = ("text/csv", "application/x-ndjson", "application/jsonl")


def start_import(principal: Principal, body: bytes, content_type: str) -> dict[str, Any]:
    parsed = parse_import(body, content_type)
    chunks = [
        {"csv": parsed.csv_text_attributes, "rows": parsed.rows[i : i + ROWS_PER_CHUNK]}
        for i in range(0, len(parsed.rows), ROWS_PER_CHUNK)
    ]
    kind = "csv" if parsed.csv_text_attributes else "jsonl"
    return jobs.start_job(
        principal.tenant_id,
        "import",
        chunks,
        total=len(parsed.rows) + len(parsed.errors),
        errors=parsed.errors,
        detail={"format": kind},
    )


class _Ordinals:
    """Hands out new ordinals from blocks reserved in one write each."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.next = self.end = 0

    def take(self) -> int:
        if self.next >= self.end:
            self.next = store.allocate_ordinals(self.tenant_id, ORDINAL_BLOCK)
            self.end = self.next + ORDINAL_BLOCK
        self.next += 1
        return self.next - 1


def _typed_text_attributes(row: dict[str, Any], known: TenantCatalog) -> dict[str, Any]:
    typed = dict(row)
    if "attributes" in row:
        typed["attributes"] = {
            name: attribute_rules.from_text(
                text,
                known.attribute_types.get(name) or attribute_rules.BUILT_IN.get(name) or "string",
                f"attributes.{name}",
            )
            for name, text in row["attributes"].items()
        }
    return typed


def _existing(tenant_id: str, row: dict[str, Any]) -> Contact | None:
    contact_id = None
    if isinstance(row.get("external_id"), str):
        contact_id = store.find_contact_id(tenant_id, external_id=row["external_id"])
    if contact_id is None and isinstance(row.get("email"), str):
        contact_id = store.find_contact_id(tenant_id, email=normalise_email(row["email"]))
    return store.get_contact(tenant_id, contact_id) if contact_id else None


def upsert_row(
    tenant_id: str, row: dict[str, Any], known: TenantCatalog, ordinals: _Ordinals, source: str
) -> str:
    """Apply one import row; return "created", "updated" or "unchanged"."""
    tags = normalise_tags(row.get("tags", []), "tags")
    known.require_tags(tags, "tags")
    fields = {k: v for k, v in row.items() if k != "tags"}
    for _ in range(5):
        before = _existing(tenant_id, row)
        changes = check_contact(fields, known.attribute_types, creating=before is None)
        if "group" in changes.fields:
            changes.fields["group"] = known.group_id(changes.fields["group"])
        known.register_types(changes.new_attribute_types, "attributes")
        now = to_rfc3339(system_clock())
        if before is None:
            ordinal = ordinals.take()
            blank = Contact(id=contact_id_for(ordinal), ordinal=ordinal, created_at=now, updated_at=now)
            after = apply_changes(blank, changes, tags, [], now)
        else:
            after = apply_changes(before, changes, tags, [], now)
            if after is before:
                return "unchanged"
        try:
            store.write_contacts(tenant_id, [(before, after)])
        except (store.StaleContact, store.TakenIdentifier) as clash:
            if isinstance(clash, store.TakenIdentifier) and before is not None:
                raise ValidationFailed(clash.field, f"Another contact already has this {clash.field}.") from None
            continue  # someone created or changed the same contact meanwhile: look again
        publish([change_message(tenant_id, before, after, "created" if before is None else "updated", source)])
        return "created" if before is None else "updated"
    raise ValidationFailed("row", "The contact kept changing while this row was applied.")


def _import_chunk(tenant_id: str, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    known = TenantCatalog(tenant_id)
    ordinals = _Ordinals(tenant_id)
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    errors = []
    for line, row in payload["rows"]:
        try:
            typed = _typed_text_attributes(row, known) if payload["csv"] else row
            counts[upsert_row(tenant_id, typed, known, ordinals, f"import:{job_id}")] += 1
        except AppError as problem:
            errors.append({"line": line, "field": problem.details.get("field"), "message": problem.message})
    return {"counts": counts, "errors": errors}


jobs.register_worker("import", _import_chunk)
