"""Tenants and their API keys.

``TenantAccount`` is bound to one tenant like every other port: its record (settings, features) and its
keys. ``TenantDirectory`` is the one port that spans tenants — what the operator manages and where an
incoming key's hash leads — and only the composition hands it out (to authentication and the operator's
routes)."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.domain.tenants import ApiKey, KeyOwner, Tenant

Position = dict[str, Any] | None


class TenantDirectory(Protocol):
    def create_tenant(self, tenant: Tenant, admin_key: ApiKey, key_hash: str) -> None:
        """The tenant and its first admin key, at once."""

    def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    def list_tenants(self, limit: int, start: Position) -> tuple[list[Tenant], Position]: ...

    def save_tenant_fields(self, tenant: Tenant, **fields: Any) -> Tenant:
        """Write ``fields`` if the tenant is still at ``tenant.version``; StaleWrite otherwise."""

    def find_key_by_hash(self, key_hash: str) -> KeyOwner | None: ...


class TenantAccount(Protocol):
    def tenant(self) -> Tenant | None: ...

    def save_fields(self, tenant: Tenant, **fields: Any) -> Tenant:
        """Write ``fields`` if the tenant is still at ``tenant.version``; StaleWrite otherwise."""

    def put_api_key(self, key: ApiKey, key_hash: str) -> None: ...

    def list_api_keys(self, limit: int, start: Position) -> tuple[list[ApiKey], Position]: ...

    def admin_key_ids(self) -> list[str]: ...

    def get_api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key and its hash."""

    def delete_api_key(self, key_id: str, key_hash: str) -> bool:
        """False when it was already gone."""
