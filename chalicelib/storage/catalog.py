"""Per-tenant definitions: tags, groups and attribute types (all under ``TENANT#{t}``)."""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import BooleanAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.catalog import AlreadyExists, Group, Tag
from chalicelib.storage.contacts import tag_pk
from chalicelib.storage.mapping import Mapper
from chalicelib.storage.table import MainTableModel, connection
from chalicelib.storage.tenants import tenant_pk


class TagItem(MainTableModel):
    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    deleting = BooleanAttribute(default=False)


class GroupItem(MainTableModel):
    group_id = UnicodeAttribute()
    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    deleting = BooleanAttribute(default=False)


class GroupNameItem(MainTableModel):
    group_id = UnicodeAttribute()


class AttributeTypeItem(MainTableModel):
    name = UnicodeAttribute()
    type = UnicodeAttribute()


TAG_MAPPER = Mapper(Tag, TagItem)
GROUP_MAPPER = Mapper(Group, GroupItem, renamed={"id": "group_id"})
"""Tag and Group fields are attributes of the same names of their items (storage/mapping.py)."""
_tag, _group = TAG_MAPPER.entity, GROUP_MAPPER.entity


def _group_name_key(tenant_id: str, name: str) -> tuple[str, str]:
    return f"TENANT#{tenant_id}#GROUPNAME#{name.casefold()}", "#GUARD"


def _group_item(tenant_id: str, group: Group) -> GroupItem:
    return GroupItem(tenant_pk(tenant_id), f"GROUP#{group.id}", **GROUP_MAPPER.attributes(group))


class CatalogTable:
    """The CatalogRepository port on DynamoDB, bound to one tenant: tags, groups and attribute types."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def create_tag(self, tag: Tag) -> None:
        try:
            TagItem(tenant_pk(self.tenant_id), f"TAG#{tag.name}", **TAG_MAPPER.attributes(tag)).save(
                condition=TagItem.pk.does_not_exist()
            )
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                raise AlreadyExists(tag.name) from error
            raise

    def get_tag(self, name: str) -> Tag | None:
        try:
            return _tag(TagItem.get(tenant_pk(self.tenant_id), f"TAG#{name}"))
        except TagItem.DoesNotExist:
            return None

    def update_tag_description(self, name: str, description: str | None) -> None:
        item = TagItem(tenant_pk(self.tenant_id), f"TAG#{name}")
        change = TagItem.description.set(description) if description is not None else TagItem.description.remove()
        item.update(actions=[change], condition=TagItem.pk.exists())

    def usable_tag_names(self) -> set[str]:
        """Tags that exist and are not being deleted."""
        items = TagItem.query(tenant_pk(self.tenant_id), TagItem.sk.startswith("TAG#"))
        return {item.name for item in items if not item.deleting}

    def mark_tag_deleting(self, name: str) -> None:
        TagItem(tenant_pk(self.tenant_id), f"TAG#{name}").update(actions=[TagItem.deleting.set(True)])

    def list_tags(self, limit: int, start: dict[str, Any] | None) -> tuple[list[Tag], dict[str, Any] | None]:
        result = TagItem.query(
            tenant_pk(self.tenant_id), TagItem.sk.startswith("TAG#"), limit=limit, last_evaluated_key=start
        )
        return [_tag(item) for item in result], result.last_evaluated_key

    def delete_tag(self, name: str) -> None:
        """Remove the tag and its (by now empty) posting list."""
        chunks = list(MainTableModel.query(tag_pk(self.tenant_id, name), attributes_to_get=["pk", "sk"]))
        with MainTableModel.batch_write() as batch:
            for chunk in chunks:
                batch.delete(chunk)
        TagItem(tenant_pk(self.tenant_id), f"TAG#{name}").delete()

    def create_group(self, group: Group) -> None:
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.save(_group_item(self.tenant_id, group), condition=GroupItem.pk.does_not_exist())
                transaction.save(
                    GroupNameItem(*_group_name_key(self.tenant_id, group.name), group_id=group.id),
                    condition=GroupNameItem.pk.does_not_exist(),
                )
        except TransactWriteError as error:
            raise AlreadyExists(group.name) from error

    def get_group(self, group_id: str) -> Group | None:
        try:
            return _group(GroupItem.get(tenant_pk(self.tenant_id), f"GROUP#{group_id}"))
        except GroupItem.DoesNotExist:
            return None

    def find_group_by_name(self, name: str) -> Group | None:
        try:
            group_id = GroupNameItem.get(*_group_name_key(self.tenant_id, name)).group_id
        except GroupNameItem.DoesNotExist:
            return None
        return self.get_group(group_id)

    def list_groups(self, limit: int, start: dict[str, Any] | None) -> tuple[list[Group], dict[str, Any] | None]:
        result = GroupItem.query(
            tenant_pk(self.tenant_id), GroupItem.sk.startswith("GROUP#"), limit=limit, last_evaluated_key=start
        )
        return [_group(item) for item in result], result.last_evaluated_key

    def all_groups(self) -> list[Group]:
        return [_group(item) for item in GroupItem.query(tenant_pk(self.tenant_id), GroupItem.sk.startswith("GROUP#"))]

    def usable_group_ids(self) -> set[str]:
        """Groups that exist and are not being deleted."""
        return {group.id for group in self.all_groups() if not group.deleting}

    def update_group(self, before: Group, after: Group) -> None:
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.save(_group_item(self.tenant_id, after), condition=GroupItem.name == before.name)
                if before.name.casefold() != after.name.casefold():
                    transaction.delete(GroupNameItem(*_group_name_key(self.tenant_id, before.name)))
                    transaction.save(
                        GroupNameItem(*_group_name_key(self.tenant_id, after.name), group_id=after.id),
                        condition=GroupNameItem.pk.does_not_exist(),
                    )
        except TransactWriteError as error:
            raise AlreadyExists(after.name) from error

    def mark_group_deleting(self, group_id: str) -> None:
        GroupItem(tenant_pk(self.tenant_id), f"GROUP#{group_id}").update(actions=[GroupItem.deleting.set(True)])

    def delete_group(self, group: Group) -> None:
        with TransactWrite(connection=connection()) as transaction:
            transaction.delete(GroupItem(tenant_pk(self.tenant_id), f"GROUP#{group.id}"))
            transaction.delete(GroupNameItem(*_group_name_key(self.tenant_id, group.name)))

    def attribute_types(self) -> dict[str, str]:
        return {
            item.name: item.type
            for item in AttributeTypeItem.query(tenant_pk(self.tenant_id), AttributeTypeItem.sk.startswith("ATTR#"))
        }

    def register_attribute_type(self, name: str, kind: str) -> str:
        """Record the type of a new attribute; return the type that won (first writer wins)."""
        try:
            AttributeTypeItem(tenant_pk(self.tenant_id), f"ATTR#{name}", name=name, type=kind).save(
                condition=AttributeTypeItem.pk.does_not_exist()
            )
            return kind
        except PutError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            return AttributeTypeItem.get(tenant_pk(self.tenant_id), f"ATTR#{name}", consistent_read=True).type
