"""The addresses a tenant never mails: bounced, complained, unsubscribed, or added by hand."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.domain.campaigns import Suppression

Position = dict[str, Any] | None


class SuppressionList(Protocol):
    def suppress(self, suppression: Suppression) -> bool:
        """Add the address (the first reason stays); False if it was already suppressed."""

    def get_suppression(self, email: str) -> Suppression | None: ...

    def unsuppress(self, email: str) -> None: ...

    def suppressions_page(self, limit: int, start: Position) -> tuple[list[Suppression], Position]: ...
