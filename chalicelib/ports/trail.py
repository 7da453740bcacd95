"""What one tenant's requests leave behind: the rate window of each key, and the audit log of writes."""

from __future__ import annotations

from typing import Any, Protocol

Position = dict[str, Any] | None


class AuditTrail(Protocol):
    def take_request(self, key: str, second: int, limit: int) -> bool:
        """Count a request in ``key``'s window for ``second``; False (nothing counted) when it is full. Two
        requests at once never both take the last place."""

    def record(self, at: str, request_id: str, entry: dict[str, Any], expires_at: int) -> None: ...

    def audit_page(self, limit: int, start: Position) -> tuple[list[dict[str, Any]], Position]:
        """Entries, newest first."""
