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
from chalicelib.domain.contacts import SHARDS, Contact, StaleContact, TakenIdentifier, check_contact, contact_id_for
from chalicelib.domain.emails import normalise_email
from chalicelib.domain.errors import AppError, ValidationFailed
from chalicelib.domain.imports import parse_import
from chalicelib.domain.tags import normalise_tags
from chalicelib.ports.contacts import ContactRepository
from chalicelib.ports.messages import ContactChanged
from chalicelib.services import jobs, shards
from chalicelib.services.changes import change_message, publish
from chalicelib.services.contacts import WRITE_ATTEMPTS, TenantCatalog, apply_changes, backoff
from chalicelib.services.context import TenantContext

ROWS_PER_CHUNK = 250
ORDINAL_BLOCK = 50
IMPORT_CONTENT_TYPES = ("text/csv", "application/x-ndjson", "application/jsonl")


def start_import(ctx: TenantContext, body: bytes, content_type: str) -> dict[str, Any]:
    parsed = parse_import(body, content_type)
    chunks = [
        {"csv": parsed.csv_text_attributes, "rows": parsed.rows[i : i + ROWS_PER_CHUNK]}
        for i in range(0, len(parsed.rows), ROWS_PER_CHUNK)
    ]
    kind = "csv" if parsed.csv_text_attributes else "jsonl"
    return jobs.start_job(
        ctx,
        "import",
        chunks,
        total=len(parsed.rows) + len(parsed.errors),
        errors=parsed.errors,
        detail={"format": kind},
    )


class _Ordinals:
    """Hands out new ordinals from blocks reserved in one write each."""

    def __init__(self, contacts: ContactRepository) -> None:
        self.contacts = contacts
        self.next = self.end = 0

    def take(self) -> int:
        if self.next >= self.end:
            self.next = self.contacts.allocate_ordinals(ORDINAL_BLOCK)
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


def _matching(external_id: str | None, by_external_id: Contact | None, by_email: Contact | None) -> Contact | None:
    """The contact a row means: the one with its external_id; else the one with its email,
    unless that contact has another external_id (then the row is refused)."""
    if by_external_id is not None:
        return by_external_id
    if by_email is not None and external_id and by_email.external_id not in (None, external_id):
        raise ValidationFailed("email", "Another contact (with another external_id) already has this email.")
    return by_email


def _existing(store: ContactRepository, row: dict[str, Any]) -> Contact | None:
    external_id, email = _identity(row)
    found = store.find_contact_id(external_id=external_id) if external_id else None
    by_external_id = store.get_contact(found) if found else None
    if by_external_id is not None or not email:
        return by_external_id
    found = store.find_contact_id(email=email)
    return _matching(external_id, None, store.get_contact(found) if found else None)


def upsert_row(
    ctx: TenantContext, row: dict[str, Any], known: TenantCatalog, ordinals: _Ordinals, source: str
) -> tuple[str, ContactChanged | None]:
    """Apply one import row on its own; return the outcome and its change message."""
    for attempt in range(WRITE_ATTEMPTS):
        before = _existing(ctx.ports.contacts, row)
        after = _planned(row, before, known, ordinals)
        if after is before:
            return "unchanged", None
        outcome = "created" if before is None else "updated"
        message = change_message(ctx.tenant_id, before, after, outcome, source)
        try:
            ctx.ports.contacts.write([(before, after)], [message])
        except (StaleContact, TakenIdentifier) as clash:
            if isinstance(clash, TakenIdentifier) and before is not None:
                raise ValidationFailed(clash.field, f"Another contact already has this {clash.field}.") from None
            backoff(attempt)  # someone created or changed the same contact meanwhile: look again
            continue
        return outcome, message
    raise ValidationFailed("row", "The contact kept changing while this row was applied.")


def _identity(row: dict[str, Any]) -> tuple[str | None, str | None]:
    external_id = row.get("external_id") if isinstance(row.get("external_id"), str) else None
    email = normalise_email(row["email"]) if isinstance(row.get("email"), str) else None
    return external_id, email


def _planned(row: dict[str, Any], before: Contact | None, known: TenantCatalog, ordinals: _Ordinals) -> Contact:
    """The contact a row asks for (``before`` itself when nothing changes)."""
    tags = normalise_tags(row.get("tags", []), "tags")
    known.require_tags(tags, "tags")
    changes = check_contact(
        {k: v for k, v in row.items() if k != "tags"}, known.attribute_types, creating=before is None
    )
    if "group" in changes.fields:
        changes.fields["group"] = known.group_id(changes.fields["group"])
    known.register_types(changes.new_attribute_types, "attributes")
    now = to_rfc3339(system_clock())
    if before is None:
        ordinal = ordinals.take()
        before_blank = Contact(id=contact_id_for(ordinal), ordinal=ordinal, created_at=now, updated_at=now)
        return apply_changes(before_blank, changes, tags, [], now)
    return apply_changes(before, changes, tags, [], now)


Planned = tuple[int, dict[str, Any], Contact | None, Contact]
"""(line, row, the contact before, the contact the row asks for)"""


class _ChunkImport:
    """One chunk of rows: looked up in batches and written many contacts a transaction; rows naming a contact
    an earlier row of the chunk names, and rows of a transaction that lost a race, go one by one afterwards."""

    def __init__(self, ctx: TenantContext, job_id: str) -> None:
        self.ctx, self.store = ctx, ctx.ports.contacts
        self.known, self.ordinals, self.source = TenantCatalog(ctx), _Ordinals(self.store), f"import:{job_id}"
        self.counts = {"created": 0, "updated": 0, "unchanged": 0}
        self.errors: list[dict[str, Any]] = []
        self.one_by_one: list[tuple[int, dict[str, Any]]] = []

    def typed(self, rows: list[tuple[int, dict[str, Any]]], csv: bool) -> list[tuple[int, dict[str, Any]]]:
        """The rows with CSV text attributes read as their types (a row that cannot be is an error)."""
        typed = []
        for line, row in rows:
            try:
                typed.append((line, _typed_text_attributes(row, self.known) if csv else row))
            except AppError as problem:
                self.errors.append(_row_error(line, problem))
        return typed

    def plan(self, rows: list[tuple[int, dict[str, Any]]]) -> list[Planned]:
        """What each row changes, from the contacts its identifiers name (read in two batched requests)."""
        identities = {line: _identity(row) for line, row in rows}
        by_external_id, by_email = self.store.find_contact_ids_many(
            external_ids=[xid for xid, _ in identities.values() if xid],
            emails=[email for _, email in identities.values() if email],
        )
        stored = self.store.get_contacts([*by_external_id.values(), *by_email.values()])
        planned: list[Planned] = []
        named: set[str] = set()
        for line, row in rows:
            external_id, email = identities[line]
            keys = {key for key in (f"x:{external_id}" if external_id else "", f"e:{email}" if email else "") if key}
            if keys & named:
                self.one_by_one.append((line, row))
                continue
            named |= keys
            try:
                before = _matching(
                    external_id,
                    stored.get(by_external_id.get(external_id or "", "")),
                    stored.get(by_email.get(email or "", "")),
                )
                after = _planned(row, before, self.known, self.ordinals)
            except AppError as problem:
                self.errors.append(_row_error(line, problem))
                continue
            if after is before:
                self.counts["unchanged"] += 1
            else:
                planned.append((line, row, before, after))
        return planned

    def write(self, planned: list[Planned]) -> None:
        """Write the planned changes in transactions, then announce them; a transaction that lost a race
        leaves its rows to :meth:`apply_one_by_one`."""
        written = []
        by_change = {(id(before), id(after)): (line, row) for line, row, before, after in planned}
        for batch in self.store.transaction_batches([(before, after) for _, _, before, after in planned]):
            outcomes = ["created" if before is None else "updated" for before, _ in batch]
            batch_messages = [
                change_message(self.ctx.tenant_id, before, after, outcome, self.source)
                for (before, after), outcome in zip(batch, outcomes, strict=True)
            ]
            try:
                self.store.write(batch, batch_messages)
            except (StaleContact, TakenIdentifier):
                self.one_by_one += [by_change[(id(before), id(after))] for before, after in batch]
                continue
            for outcome in outcomes:
                self.counts[outcome] += 1
            written.append(batch_messages)
        publish(self.ctx, *written)

    def apply_one_by_one(self) -> None:
        for line, row in sorted(self.one_by_one):
            try:
                outcome, message = upsert_row(self.ctx, row, self.known, self.ordinals, self.source)
            except AppError as problem:
                self.errors.append(_row_error(line, problem))
                continue
            self.counts[outcome] += 1
            publish(self.ctx, [message] if message else [])


def _import_chunk(ctx: TenantContext, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    chunk = _ChunkImport(ctx, job_id)
    chunk.write(chunk.plan(chunk.typed(payload["rows"], payload["csv"])))
    chunk.apply_one_by_one()
    return {"counts": chunk.counts, "errors": chunk.errors}


def _row_error(line: int, problem: AppError) -> dict[str, Any]:
    return {"line": line, "field": problem.details.get("field"), "message": problem.message}


def _compact_imported(ctx: TenantContext, job: Any) -> None:
    """A finished import is a bulk write over every shard (services/shards.compact_after_bulk_write)."""
    shards.compact_after_bulk_write(ctx, job.counts.get("created", 0) + job.counts.get("updated", 0), range(SHARDS))


JOB_KINDS = {"import": jobs.JobKind(_import_chunk, on_done=_compact_imported)}
