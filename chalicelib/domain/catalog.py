"""The tenant's catalog: tags, groups (and their attribute types, in domain/attributes.py)."""

from __future__ import annotations

from dataclasses import dataclass

# --- the entities (storage/catalog.py maps them to items) --------------------


@dataclass(frozen=True)
class Tag:
    name: str
    description: str | None
    created_at: str
    deleting: bool = False


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    description: str | None
    created_at: str
    deleting: bool = False


class AlreadyExists(Exception):
    pass
