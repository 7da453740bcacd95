"""Jobs: long work split into chunks, with progress people can watch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# --- the entities (storage/jobs.py maps them to items) --------------------


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    status: str
    total: int
    chunks_total: int
    counts: dict[str, int]
    detail: dict[str, Any]
    created_at: str
    finished_at: str | None
