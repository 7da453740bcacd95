"""Purchase-like events attached to contacts.

An event has a ``type`` ("purchase"), a time ``at``, an optional ``amount`` and
flat ``properties`` ({"category": "family", "discounted": true}). Events are kept
for RETENTION_DAYS (then DynamoDB's TTL removes them), which bounds every window
a segment can ask about. A client-supplied ``id`` makes a retried request safe:
the same id is stored once.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.clock import moment_field, parse_rfc3339, to_rfc3339
from chalicelib.domain.errors import LimitExceeded, ValidationFailed
from chalicelib.domain.values import check_number

RETENTION_DAYS = 400
MAX_FUTURE = timedelta(days=1)
MAX_EVENTS_PER_REQUEST = 1_000
MAX_PROPERTIES = 50
MAX_PROPERTY_TEXT = 500
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_TYPE = re.compile(EVENT_TYPE_PATTERN)
_ID = re.compile(EVENT_ID_PATTERN)
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "at"],
    "properties": {
        "id": {"type": "string", "maxLength": 128},
        "type": {"type": "string", "maxLength": 64},
        "at": {"type": "string", "format": "date-time"},
        "amount": {"type": "number"},
        "properties": {"type": "object"},
        "contact_id": {"type": "string"},
        "external_id": {"type": "string"},
    },
}
CONTACT_EVENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["events"],
    "properties": {
        "events": {"type": "array", "minItems": 1, "maxItems": MAX_EVENTS_PER_REQUEST, "items": EVENT_SCHEMA}
    },
}


def check_event(raw: Any, now: datetime, field: str, *, allow_contact_ref: bool = False) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValidationFailed(field, f"{field} must be an object.")
    allowed = {"id", "type", "at", "amount", "properties"} | (
        {"contact_id", "external_id"} if allow_contact_ref else set()
    )
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValidationFailed(f"{field}.{unknown[0]}", f"{field}.{unknown[0]} is not an event field.")
    kind = raw.get("type")
    if not isinstance(kind, str) or not _TYPE.match(kind):
        raise ValidationFailed(f"{field}.type", f"{field}.type is 1-64 characters of a-z, 0-9, '_', '.', '-'.")
    at = moment_field(raw.get("at"), f"{field}.at")
    if at > now + MAX_FUTURE:
        raise ValidationFailed(f"{field}.at", f"{field}.at is more than a day in the future.")
    if at < now - timedelta(days=RETENTION_DAYS):
        raise ValidationFailed(f"{field}.at", f"{field}.at is older than the {RETENTION_DAYS}-day event retention.")
    event: dict[str, Any] = {"type": kind, "at": to_rfc3339(at)}
    if "id" in raw:
        if not isinstance(raw["id"], str) or not _ID.match(raw["id"]):
            raise ValidationFailed(f"{field}.id", f"{field}.id is 1-128 characters of letters, digits and . _ : -.")
        event["id"] = raw["id"]
    else:
        event["id"] = f"evt_{int(at.timestamp() * 1000):013d}{secrets.token_hex(6)}"
    if raw.get("amount") is not None:
        event["amount"] = check_number(raw["amount"], f"{field}.amount")
    properties = raw.get("properties") or {}
    if not isinstance(properties, dict):
        raise ValidationFailed(f"{field}.properties", f"{field}.properties must be an object.")
    if len(properties) > MAX_PROPERTIES:
        raise LimitExceeded(f"{field}.properties", f"at most {MAX_PROPERTIES} properties.", limit=MAX_PROPERTIES)
    for name, value in properties.items():
        path = f"{field}.properties.{name}"
        if not _PROPERTY_NAME.match(name):
            raise ValidationFailed(path, f"{path}: property names are a-z, 0-9 and '_', starting with a letter.")
        if not isinstance(value, str | int | float | bool):
            raise ValidationFailed(path, f"{path} must be text, a number or true/false.")
        if not isinstance(value, str | bool):
            check_number(value, path)
        if isinstance(value, str) and len(value) > MAX_PROPERTY_TEXT:
            raise LimitExceeded(path, f"{path} is longer than {MAX_PROPERTY_TEXT} characters.", limit=MAX_PROPERTY_TEXT)
    event["properties"] = dict(properties)
    return event


def expires_at(event: dict[str, Any]) -> int:
    """Epoch seconds when DynamoDB's TTL may delete the event."""
    return int((parse_rfc3339(event["at"]) + timedelta(days=RETENTION_DAYS)).timestamp())
