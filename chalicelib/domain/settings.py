"""Tenant settings: product defaults, the PATCH contract, and the effective view.

Only a tenant's overrides are stored; the effective settings are the defaults with
the overrides merged in, so a tenant who never touched a limit follows the product
default. PATCH follows JSON Merge Patch (RFC 7396): objects merge, a value
replaces, ``null`` resets the field to its default.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from chalicelib.domain.emails import is_valid_email
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.time_zones import check_time_zone
from chalicelib.domain.validation import validate

LIMIT_CEILING = 50
"""No tenant setting may raise a limit above this: the engine is sized for it."""

DEFAULTS: dict[str, Any] = {
    "sender": {"email": None, "name": None, "reply_to": None},
    "limits": {
        "tags_per_segment": 10,
        "segments_per_campaign": 10,
        "segments_per_trigger": 10,
        "segments_per_announcement": 10,
        "segments_per_challenge": 10,
        "segments_per_journey": 10,
    },
    "send_rate_per_second": 10,
    "requests_per_second": 50,
    "jobs_at_once": 4,
    "frequency_cap": {"max_emails": None, "per_days": 7},
    "snapshots": {"compact_after_changes": 64, "compact_after_seconds": 300},
    "tracking": True,
    "time_zone": "UTC",
}

_nullable_email = {"type": ["string", "null"], "maxLength": 254}
_limit = {"type": ["integer", "null"], "minimum": 1, "maximum": LIMIT_CEILING}

PATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "sender": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "email": _nullable_email,
                "name": {"type": ["string", "null"], "maxLength": 100},
                "reply_to": _nullable_email,
            },
        },
        "limits": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {name: _limit for name in DEFAULTS["limits"]},
        },
        "send_rate_per_second": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000},
        "requests_per_second": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000},
        "jobs_at_once": {"type": ["integer", "null"], "minimum": 1, "maximum": 20},
        "frequency_cap": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "max_emails": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000},
                "per_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 90},
            },
        },
        "snapshots": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "compact_after_changes": {"type": ["integer", "null"], "minimum": 1, "maximum": 10_000},
                "compact_after_seconds": {"type": ["integer", "null"], "minimum": 10, "maximum": 86_400},
            },
        },
        "tracking": {"type": ["boolean", "null"]},
        "time_zone": {"type": ["string", "null"], "maxLength": 64},
    },
}

SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sender": {"type": "object"},
        "limits": {"type": "object"},
        "send_rate_per_second": {"type": "integer"},
        "requests_per_second": {"type": "integer"},
        "jobs_at_once": {"type": "integer"},
        "frequency_cap": {"type": "object"},
        "snapshots": {"type": "object"},
        "tracking": {"type": "boolean", "description": "Opens and clicks are tracked (a campaign may say)."},
        "time_zone": {
            "type": "string",
            "description": "IANA name: journeys' waits until a time of day, unless the contact has its own.",
        },
    },
}


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        elif isinstance(value, dict):
            merged[key] = _merge({}, value)
        else:
            merged[key] = copy.deepcopy(value)
    return {k: v for k, v in merged.items() if v != {}}


def effective(overrides: dict[str, Any] | None) -> dict[str, Any]:
    return _merge(DEFAULTS, overrides or {})


def apply_patch(overrides: dict[str, Any] | None, patch: Any) -> dict[str, Any]:
    """Validate ``patch`` and return the new overrides to store."""
    validate(patch, PATCH_SCHEMA)
    for field in ("email", "reply_to"):
        value = (patch.get("sender") or {}).get(field)
        if value is not None and not is_valid_email(value):
            raise ValidationFailed(f"sender.{field}", f"sender.{field} is not a valid email address.")
    if patch.get("time_zone") is not None:
        check_time_zone(patch["time_zone"], "time_zone")
    return _merge(overrides or {}, patch)


def limit(settings: Mapping[str, Any], name: str) -> int:
    """The one place limits are read from (DESIGN.md principle 6)."""
    return int(settings["limits"][name])
