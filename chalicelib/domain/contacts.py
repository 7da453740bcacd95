"""Contacts: identity, fields, and what a change is.

Every contact has a dense per-tenant *ordinal* (1, 2, 3 …). Its id is the ordinal
in Crockford base32 (``ctc_000001b``), so the id alone tells where the contact
lives (shard = ordinal mod SHARDS) and the tag and membership indexes can hold
ordinals in DynamoDB number sets. Contacts can also be addressed by their
client ``external_id``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain import attributes as attribute_rules
from chalicelib.domain.emails import MAX_EMAIL_LENGTH, is_valid_email, normalise_email
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.tags import normalise_tags

SHARDS = 16
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_ID_DIGITS = 7
_CONTACT_ID = re.compile(rf"^ctc_[{_ALPHABET}]{{{_ID_DIGITS}}}$")
EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}$"
_EXTERNAL_ID = re.compile(EXTERNAL_ID_PATTERN)
NAME_FIELDS = ("first_name", "last_name")
MAX_NAME_LENGTH = 200


def contact_id_for(ordinal: int) -> str:
    digits = []
    for _ in range(_ID_DIGITS):
        digits.append(_ALPHABET[ordinal & 31])
        ordinal >>= 5
    return "ctc_" + "".join(reversed(digits))


def contact_ids_for(ordinals: Iterable[int]) -> list[str]:
    """The ids of ``ordinals``, in ordinal order."""
    return [contact_id_for(o) for o in sorted(ordinals)]


def ordinal_of(contact_id: str) -> int | None:
    """The ordinal inside a contact id, or None when it is not a contact id."""
    if not isinstance(contact_id, str) or not _CONTACT_ID.match(contact_id):
        return None
    value = 0
    for char in contact_id[4:]:
        value = value * 32 + _ALPHABET.index(char)
    return value


def shard_of(ordinal: int) -> int:
    return ordinal % SHARDS


_optional_text = {"type": ["string", "null"], "maxLength": MAX_NAME_LENGTH}
CONTACT_FIELDS_SCHEMA: dict[str, Any] = {
    "external_id": {"type": ["string", "null"], "maxLength": 128},
    "email": {"type": ["string", "null"], "maxLength": MAX_EMAIL_LENGTH},
    "first_name": _optional_text,
    "last_name": _optional_text,
    "group": {"type": ["string", "null"], "maxLength": 64},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
    "attributes": {"type": "object"},
}
CREATE_CONTACT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": CONTACT_FIELDS_SCHEMA,
}
PATCH_CONTACT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {k: v for k, v in CONTACT_FIELDS_SCHEMA.items() if k != "tags"},
}
CONTACT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "tags", "attributes", "version", "created_at", "updated_at"],
    "properties": {
        "id": {"type": "string"},
        "external_id": {"type": ["string", "null"]},
        "email": {"type": ["string", "null"]},
        "first_name": {"type": ["string", "null"]},
        "last_name": {"type": ["string", "null"]},
        "group": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "attributes": {"type": "object"},
        "version": {"type": "integer"},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
    },
}


@dataclass
class ContactChanges:
    """A validated create or patch: only the fields that were given."""

    fields: dict[str, Any] = field(default_factory=dict)  # external_id, email, names, group (None clears)
    tags: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)  # None removes
    new_attribute_types: dict[str, str] = field(default_factory=dict)


def _check_scalar_fields(body: dict[str, Any], prefix: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "external_id" in body:
        value = body["external_id"]
        if value is not None and (not isinstance(value, str) or not _EXTERNAL_ID.match(value)):
            raise ValidationFailed(
                f"{prefix}external_id",
                "external_id is 1-128 characters of letters, digits and . _ : @ / + -, "
                "starting with a letter or digit.",
            )
        fields["external_id"] = value
    if "email" in body:
        value = body["email"]
        if value is not None:
            if not is_valid_email(value.strip() if isinstance(value, str) else value):
                raise ValidationFailed(f"{prefix}email", "email is not a valid email address.")
            value = normalise_email(value)
        fields["email"] = value
    for name in NAME_FIELDS:
        if name in body:
            value = body[name]
            if value is not None and (not isinstance(value, str) or len(value) > MAX_NAME_LENGTH):
                raise ValidationFailed(
                    f"{prefix}{name}", f"{name} must be text of at most {MAX_NAME_LENGTH} characters."
                )
            fields[name] = value.strip() if isinstance(value, str) and value.strip() else None
    if "group" in body:
        value = body["group"]
        if value is not None and not isinstance(value, str):
            raise ValidationFailed(f"{prefix}group", "group must be a group id.")
        fields["group"] = value or None
    return fields


def check_contact(body: Any, catalog: dict[str, str], *, creating: bool, prefix: str = "") -> ContactChanges:
    if not isinstance(body, dict):
        raise ValidationFailed(prefix.rstrip(".") or "body", "A contact must be a JSON object.")
    allowed = set(CONTACT_FIELDS_SCHEMA) if creating else set(PATCH_CONTACT_SCHEMA["properties"])
    unknown = sorted(set(body) - allowed)
    if unknown:
        hint = " (change tags with POST /contacts/{id}/tags)" if unknown[0] == "tags" else ""
        raise ValidationFailed(f"{prefix}{unknown[0]}", f"{unknown[0]} is not a contact field{hint}.")
    changes = ContactChanges(fields=_check_scalar_fields(body, prefix))
    if creating and not (changes.fields.get("email") or changes.fields.get("external_id")):
        raise ValidationFailed(f"{prefix}email", "A contact needs an email or an external_id.")
    if "tags" in body:
        changes.tags = normalise_tags(body["tags"], f"{prefix}tags")
    if "attributes" in body:
        stored, introduced = attribute_rules.check_attributes(body["attributes"], catalog, f"{prefix}attributes")
        if creating:
            stored = {k: v for k, v in stored.items() if v is not None}
        changes.attributes, changes.new_attribute_types = stored, introduced
    return changes


# --- the entities (storage/contacts.py maps them to items) --------------------


@dataclass(frozen=True)
class Contact:
    id: str
    ordinal: int
    external_id: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    group: str | None = None
    tags: frozenset[str] = frozenset()
    attributes: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    created_at: str = ""
    updated_at: str = ""


class StaleContact(Exception):
    """The contact changed (or vanished) since it was read."""


class TakenIdentifier(Exception):
    def __init__(self, field_name: str) -> None:
        super().__init__(field_name)
        self.field = field_name
