"""Tenants and their API keys in the main table."""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import MapAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.tenants import ApiKey, KeyOwner, StaleWrite, Tenant
from chalicelib.storage.mapping import plain_map
from chalicelib.storage.table import Gsi1, MainTableModel, connection


def tenant_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


class TenantItem(MainTableModel):
    name = UnicodeAttribute()
    features: MapAttribute[str, Any] = MapAttribute(default=dict)
    settings: MapAttribute[str, Any] = MapAttribute(default=dict)
    created_at = UnicodeAttribute()
    version = VersionAttribute()
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    gsi1 = Gsi1()


class ApiKeyItem(MainTableModel):
    key_id = UnicodeAttribute()
    name = UnicodeAttribute()
    role = UnicodeAttribute()
    hint = UnicodeAttribute()
    key_hash = UnicodeAttribute()
    created_at = UnicodeAttribute()


class ApiKeyLookupItem(MainTableModel):
    tenant_id = UnicodeAttribute()
    key_id = UnicodeAttribute()
    role = UnicodeAttribute()
    name = UnicodeAttribute(null=True)  # for the audit log (keys made before it have none)


def _tenant(item: TenantItem) -> Tenant:
    return Tenant(
        id=item.pk.split("#", 1)[1],
        name=item.name,
        features={k: bool(v) for k, v in plain_map(item.features).items()},
        settings=plain_map(item.settings),
        created_at=item.created_at,
        version=item.version,
    )


def _api_key(item: ApiKeyItem) -> ApiKey:
    return ApiKey(
        id=item.key_id,
        tenant_id=item.pk.split("#", 1)[1],
        name=item.name,
        role=item.role,
        hint=item.hint,
        created_at=item.created_at,
    )


def _key_items(tenant_id: str, key: ApiKey, key_hash: str) -> tuple[ApiKeyItem, ApiKeyLookupItem]:
    listing = ApiKeyItem(
        tenant_pk(tenant_id),
        f"APIKEY#{key.id}",
        key_id=key.id,
        name=key.name,
        role=key.role,
        hint=key.hint,
        key_hash=key_hash,
        created_at=key.created_at,
    )
    lookup = ApiKeyLookupItem(
        f"APIKEY#{key_hash}", "#APIKEY", tenant_id=tenant_id, key_id=key.id, role=key.role, name=key.name
    )
    return listing, lookup


def create_tenant(tenant: Tenant, admin_key: ApiKey, key_hash: str) -> None:
    item = TenantItem(
        tenant_pk(tenant.id),
        "#TENANT",
        name=tenant.name,
        features=tenant.features,
        settings=tenant.settings,
        created_at=tenant.created_at,
        gsi1pk="TENANTS",
        gsi1sk=tenant.id,
    )
    listing, lookup = _key_items(tenant.id, admin_key, key_hash)
    with TransactWrite(connection=connection()) as transaction:
        transaction.save(item, condition=TenantItem.pk.does_not_exist())
        transaction.save(listing, condition=ApiKeyItem.pk.does_not_exist())
        transaction.save(lookup, condition=ApiKeyLookupItem.pk.does_not_exist())


def get_tenant(tenant_id: str) -> Tenant | None:
    try:
        return _tenant(TenantItem.get(tenant_pk(tenant_id), "#TENANT"))
    except TenantItem.DoesNotExist:
        return None


def list_tenants(limit: int, start: dict[str, Any] | None) -> tuple[list[Tenant], dict[str, Any] | None]:
    result = TenantItem.gsi1.query("TENANTS", limit=limit, last_evaluated_key=start)
    items = [_tenant(item) for item in result]
    return items, result.last_evaluated_key


def save_tenant_fields(tenant: Tenant, **fields: Any) -> Tenant:
    """Write ``fields`` if the tenant is still at ``tenant.version``; else StaleWrite."""
    item = TenantItem.get(tenant_pk(tenant.id), "#TENANT")
    if item.version != tenant.version:
        raise StaleWrite(tenant.id)
    for name, value in fields.items():
        setattr(item, name, value)
    try:
        item.save()
    except PutError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise StaleWrite(tenant.id) from error
        raise
    return _tenant(item)


def put_api_key(tenant_id: str, key: ApiKey, key_hash: str) -> None:
    listing, lookup = _key_items(tenant_id, key, key_hash)
    with TransactWrite(connection=connection()) as transaction:
        transaction.save(listing, condition=ApiKeyItem.pk.does_not_exist())
        transaction.save(lookup, condition=ApiKeyLookupItem.pk.does_not_exist())


def list_api_keys(
    tenant_id: str, limit: int, start: dict[str, Any] | None
) -> tuple[list[ApiKey], dict[str, Any] | None]:
    result = ApiKeyItem.query(
        tenant_pk(tenant_id), ApiKeyItem.sk.startswith("APIKEY#"), limit=limit, last_evaluated_key=start
    )
    return [_api_key(item) for item in result], result.last_evaluated_key


def admin_key_ids(tenant_id: str) -> list[str]:
    result = ApiKeyItem.query(tenant_pk(tenant_id), ApiKeyItem.sk.startswith("APIKEY#"))
    return [item.key_id for item in result if item.role == "admin"]


def get_api_key(tenant_id: str, key_id: str) -> tuple[ApiKey, str] | None:
    try:
        item = ApiKeyItem.get(tenant_pk(tenant_id), f"APIKEY#{key_id}")
    except ApiKeyItem.DoesNotExist:
        return None
    return _api_key(item), item.key_hash


def delete_api_key(tenant_id: str, key_id: str, key_hash: str) -> bool:
    """Delete both items of a key; False when it was already gone."""
    try:
        with TransactWrite(connection=connection()) as transaction:
            transaction.delete(ApiKeyItem(tenant_pk(tenant_id), f"APIKEY#{key_id}"), condition=ApiKeyItem.pk.exists())
            transaction.delete(ApiKeyLookupItem(f"APIKEY#{key_hash}", "#APIKEY"))
    except TransactWriteError:
        if get_api_key(tenant_id, key_id) is None:
            return False
        raise
    return True


def find_key_by_hash(key_hash: str) -> KeyOwner | None:
    try:
        item = ApiKeyLookupItem.get(f"APIKEY#{key_hash}", "#APIKEY")
    except ApiKeyLookupItem.DoesNotExist:
        return None
    return KeyOwner(item.tenant_id, item.key_id, item.role, item.name)


class TenantDirectoryTable:
    """The TenantDirectory port on DynamoDB (across tenants: the operator's and authentication's view)."""

    def create_tenant(self, tenant: Tenant, admin_key: ApiKey, key_hash: str) -> None:
        create_tenant(tenant, admin_key, key_hash)

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        return get_tenant(tenant_id)

    def list_tenants(self, limit: int, start: dict[str, Any] | None) -> tuple[list[Tenant], dict[str, Any] | None]:
        return list_tenants(limit, start)

    def save_tenant_fields(self, tenant: Tenant, **fields: Any) -> Tenant:
        return save_tenant_fields(tenant, **fields)

    def find_key_by_hash(self, key_hash: str) -> KeyOwner | None:
        return find_key_by_hash(key_hash)


class TenantAccountTable:
    """The TenantAccount port on DynamoDB, bound to one tenant."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def tenant(self) -> Tenant | None:
        return get_tenant(self.tenant_id)

    def save_fields(self, tenant: Tenant, **fields: Any) -> Tenant:
        assert tenant.id == self.tenant_id, "a tenant's account writes only that tenant"
        return save_tenant_fields(tenant, **fields)

    def put_api_key(self, key: ApiKey, key_hash: str) -> None:
        put_api_key(self.tenant_id, key, key_hash)

    def list_api_keys(self, limit: int, start: dict[str, Any] | None) -> tuple[list[ApiKey], dict[str, Any] | None]:
        return list_api_keys(self.tenant_id, limit, start)

    def admin_key_ids(self) -> list[str]:
        return admin_key_ids(self.tenant_id)

    def get_api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        return get_api_key(self.tenant_id, key_id)

    def delete_api_key(self, key_id: str, key_hash: str) -> bool:
        return delete_api_key(self.tenant_id, key_id, key_hash)
