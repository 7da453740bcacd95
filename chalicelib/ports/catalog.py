"""One tenant's catalog: the tags and groups it has defined, and the type of each attribute."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.domain.catalog import Group, Tag

Position = dict[str, Any] | None


class CatalogRepository(Protocol):
    def create_tag(self, tag: Tag) -> None:
        """AlreadyExists if the tag exists."""

    def get_tag(self, name: str) -> Tag | None: ...

    def update_tag_description(self, name: str, description: str | None) -> None: ...

    def usable_tag_names(self) -> set[str]:
        """Tags that exist and are not being deleted."""

    def mark_tag_deleting(self, name: str) -> None: ...

    def list_tags(self, limit: int, start: Position) -> tuple[list[Tag], Position]: ...

    def delete_tag(self, name: str) -> None:
        """The tag and its (by then empty) posting list."""

    def create_group(self, group: Group) -> None:
        """AlreadyExists if a group has that name (in any case)."""

    def get_group(self, group_id: str) -> Group | None: ...

    def find_group_by_name(self, name: str) -> Group | None:
        """Names compare without case."""

    def list_groups(self, limit: int, start: Position) -> tuple[list[Group], Position]: ...

    def all_groups(self) -> list[Group]: ...

    def usable_group_ids(self) -> set[str]:
        """Groups that exist and are not being deleted."""

    def update_group(self, before: Group, after: Group) -> None:
        """AlreadyExists if the new name is another group's."""

    def mark_group_deleting(self, group_id: str) -> None: ...

    def delete_group(self, group: Group) -> None: ...

    def attribute_types(self) -> dict[str, str]:
        """Attribute name → its type (fixed by the first value stored)."""

    def register_attribute_type(self, name: str, kind: str) -> str:
        """Record a new attribute's type; the type that won (the first writer wins)."""
