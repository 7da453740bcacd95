"""Typed contact attributes.

An attribute has one type per tenant: ``string``, ``number``, ``boolean``,
``datetime`` (RFC 3339, stored normalised to UTC) or ``string_list``. The built-in
catalog fixes the types of the common PII and demographic fields; any other
attribute takes the type of the first value it is given, and later values must
match (a 422 names the attribute otherwise). Date-times are recognised from
RFC 3339 strings with a time and offset ("2026-01-31T09:00:00Z").
"""

from __future__ import annotations

import re
from typing import Any

from chalicelib.domain.clock import check_moment, looks_like_rfc3339
from chalicelib.domain.errors import LimitExceeded, ValidationFailed
from chalicelib.domain.time_zones import check_time_zone
from chalicelib.domain.values import check_number, number_from_text

TYPES = ("string", "number", "boolean", "datetime", "string_list")
BUILT_IN: dict[str, str] = {
    "country": "string",
    "region": "string",
    "city": "string",
    "postal_code": "string",
    "lat": "number",
    "long": "number",
    "phone": "string",
    "company": "string",
    "language": "string",
    "signup_at": "datetime",
    "lifetime_value": "number",
    "time_zone": "string",
}
"""Built-in attributes have these types; ``time_zone`` is an IANA name (journeys wait until a time of day in
it), checked like the tenant's."""
ATTRIBUTE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
_NAME = re.compile(ATTRIBUTE_NAME_PATTERN)
RESERVED = frozenset(
    {"id", "email", "first_name", "last_name", "external_id", "group", "tags", "created_at", "updated_at"}
)
"""Contact fields: criteria test them by these names, so no attribute may take one."""
MAX_ATTRIBUTES = 100
MAX_STRING_LENGTH = 1_000
MAX_LIST_ITEMS = 100


def infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "string_list"
    if looks_like_rfc3339(value):
        return "datetime"  # one out of the range is then refused, not kept as text
    return "string"


def coerce(value: Any, kind: str, field: str) -> Any:
    """Check ``value`` against ``kind``; return the stored form."""
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValidationFailed(field, f"{field} must be true or false.", expected="boolean")
        return value
    if kind == "number":
        return check_number(value, field)
    if kind == "datetime":
        return check_moment(value, field)
    if kind == "string_list":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValidationFailed(field, f"{field} must be a list of strings.", expected="string_list")
        if len(value) > MAX_LIST_ITEMS:
            raise LimitExceeded(field, f"{field} may hold at most {MAX_LIST_ITEMS} items.", limit=MAX_LIST_ITEMS)
        for index, item in enumerate(value):
            _check_length(item, f"{field}[{index}]")
        return list(value)
    if not isinstance(value, str):
        raise ValidationFailed(field, f"{field} must be a string.", expected="string")
    _check_length(value, field)
    return value


def _check_length(value: str, field: str) -> None:
    if len(value) > MAX_STRING_LENGTH:
        raise LimitExceeded(
            field, f"{field} is {len(value)} characters; the limit is {MAX_STRING_LENGTH}.", limit=MAX_STRING_LENGTH
        )


def from_text(text: str, kind: str, field: str) -> Any:
    """Interpret a CSV cell as ``kind`` (cells are text; JSON bodies keep their types)."""
    if kind == "number":
        return number_from_text(text, field)
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValidationFailed(field, f"{field} must be true or false.", expected="boolean")
        return lowered in ("true", "1", "yes")
    if kind == "string_list":
        return [item.strip() for item in text.split(";") if item.strip()]
    return text


def check_attributes(
    attributes: Any, catalog: dict[str, str], field: str = "attributes"
) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate an attribute patch (null removes an attribute).

    Returns the stored form and the attribute types this patch introduces.
    """
    if not isinstance(attributes, dict):
        raise ValidationFailed(field, f"{field} must be an object.")
    if len(attributes) > MAX_ATTRIBUTES:
        raise LimitExceeded(field, f"{field} may hold at most {MAX_ATTRIBUTES} attributes.", limit=MAX_ATTRIBUTES)
    stored: dict[str, Any] = {}
    introduced: dict[str, str] = {}
    for name, value in attributes.items():
        path = f"{field}.{name}"
        if not _NAME.match(name):
            raise ValidationFailed(
                path, f"{path}: names are 1-64 characters of a-z, 0-9 and '_', starting with a letter."
            )
        if name in RESERVED:
            raise ValidationFailed(path, f"{path}: {name} is a contact field, not an attribute.")
        if value is None:
            stored[name] = None
            continue
        kind = catalog.get(name) or BUILT_IN.get(name) or introduced.get(name) or infer_type(value)
        stored[name] = coerce(value, kind, path)
        if name == "time_zone":
            check_time_zone(stored[name], path)
        if name not in catalog:
            introduced[name] = kind
    return stored, introduced


def merge(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    if len(merged) > MAX_ATTRIBUTES:
        raise LimitExceeded(
            "attributes", f"a contact may hold at most {MAX_ATTRIBUTES} attributes.", limit=MAX_ATTRIBUTES
        )
    return merged
