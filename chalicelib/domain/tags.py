"""Tag names.

Tags are case-insensitive: names are trimmed and lower-cased, so "VIP" and "vip"
are the same tag. A name is 1–64 characters from ``a-z 0-9 - _ . :``, starting
with a letter or digit (no spaces: use "-"). Tags must exist before a contact or
a segment uses them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from chalicelib.domain.errors import ValidationFailed

TAG_NAME_PATTERN = r"^[a-z0-9][a-z0-9._:-]{0,63}$"
_TAG_NAME = re.compile(TAG_NAME_PATTERN)
MAX_TAGS_PER_REQUEST = 100

CREATE_TAG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 64},
        "description": {"type": ["string", "null"], "maxLength": 500},
    },
}

PATCH_TAG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["description"],
    "properties": {"description": {"type": ["string", "null"], "maxLength": 500}},
}


def normalise_tag(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(field, f"{field} must be a tag name (a string).")
    name = value.strip().lower()
    if not _TAG_NAME.match(name):
        raise ValidationFailed(
            field,
            f"{field}: tag names are 1-64 characters of a-z, 0-9, '-', '_', '.', ':' starting with a letter or digit.",
        )
    return name


def normalise_tags(values: Any, field: str) -> list[str]:
    """Normalise a list of tag names, keeping first-seen order and dropping repeats."""
    if not isinstance(values, list):
        raise ValidationFailed(field, f"{field} must be a list of tag names.")
    if len(values) > MAX_TAGS_PER_REQUEST:
        raise ValidationFailed(field, f"{field} may list at most {MAX_TAGS_PER_REQUEST} tags.")
    seen: dict[str, None] = {}
    for index, value in enumerate(values):
        seen.setdefault(normalise_tag(value, f"{field}[{index}]"), None)
    return list(seen)


def missing_tags(wanted: Iterable[str], existing: Iterable[str]) -> list[str]:
    known = set(existing)
    return sorted({tag for tag in wanted if tag not in known})
