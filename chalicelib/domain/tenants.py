"""Tenant and API key rules: request shapes, feature flags, roles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.domain.keys import ROLES

FEATURES: dict[str, bool] = {"segments": False}
"""Feature flags and their default for a new tenant; segments are enabled per tenant."""

_name = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"}

CREATE_TENANT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {"name": _name},
}

PATCH_TENANT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "name": _name,
        "features": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {name: {"type": "boolean"} for name in FEATURES},
        },
    },
}

TENANT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "features", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "features": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "created_at": {"type": "string", "format": "date-time"},
        "admin_key": {"type": "string", "description": "Only in the creation response: shown once."},
    },
}

CREATE_KEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["role"],
    "properties": {"role": {"enum": list(ROLES)}, "name": {"type": "string", "minLength": 1, "maxLength": 100}},
}

API_KEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "role", "hint", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "role": {"enum": list(ROLES)},
        "hint": {"type": "string", "description": "The key's first characters, to tell keys apart."},
        "created_at": {"type": "string", "format": "date-time"},
        "key": {"type": "string", "description": "Only in the creation response: shown once."},
    },
}


def features_with_defaults(stored: dict[str, bool]) -> dict[str, bool]:
    return {name: bool(stored.get(name, default)) for name, default in FEATURES.items()}


# --- the entities (storage/tenants.py maps them to items) --------------------


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    features: dict[str, bool]
    settings: dict[str, Any]
    created_at: str
    version: int


@dataclass(frozen=True)
class KeyOwner:
    """Whose an API key is, found by the key's hash when a request comes in."""

    tenant_id: str
    key_id: str
    role: str
    name: str | None


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    role: str
    hint: str
    created_at: str


class StaleWrite(Exception):
    """The item changed since it was read; the caller re-reads and retries."""
