"""Who is calling: resolved once per request from the bearer key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Principal:
    kind: str  # "operator", "tenant" or "portal"
    tenant_id: str | None = None
    role: str | None = None
    key_id: str | None = None
    key_name: str | None = None
    features: dict[str, bool] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    contact_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "tenant" and self.role == "admin"
