"""Response-schema helpers shared by route modules."""

from __future__ import annotations

from typing import Any

CONFIRM_QUERY: dict[str, dict[str, Any]] = {
    "confirm": {"schema": {"type": "boolean"}, "description": "Confirm a deletion after reviewing its impact."}
}
"""Every delete reviews what depends on the target first (services/dependents.review)."""


def page_of(item_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array", "items": item_schema}, "next_cursor": {"type": ["string", "null"]}},
    }


def list_of(item_schema: dict[str, Any]) -> dict[str, Any]:
    """A whole list (no paging): ``{"items": [...]}``."""
    return {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": item_schema}}}


JOB_SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "kind", "status", "progress", "counts"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string"},
        "status": {"enum": ["running", "succeeded", "completed_with_errors", "failed"]},
        "progress": {"type": "object"},
        "counts": {"type": "object"},
        "detail": {"type": ["object", "null"]},
        "created_at": {"type": "string"},
        "finished_at": {"type": ["string", "null"]},
    },
}
JOB_SCHEMA: dict[str, Any] = {
    **JOB_SUMMARY_SCHEMA,
    "required": [*JOB_SUMMARY_SCHEMA["required"], "errors"],
    "properties": {
        **JOB_SUMMARY_SCHEMA["properties"],
        "errors": {"type": "array", "items": {"type": "object"}},
        "more_errors": {"type": "boolean"},
    },
}
