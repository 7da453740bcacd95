"""What criteria may name: the tenant's usable tags and groups, and its attribute types."""

from __future__ import annotations

from typing import Protocol


class CatalogReader(Protocol):
    def usable_tag_names(self) -> set[str]:
        """Tags that exist and are not being deleted."""

    def usable_group_ids(self) -> set[str]: ...

    def attribute_types(self) -> dict[str, str]:
        """Attribute name → its type (fixed by the first value stored)."""
