"""Tenants, their API keys and their settings."""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain import settings as settings_rules
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.domain.ids import new_id
from chalicelib.domain.keys import generate_api_key, hash_api_key, key_hint
from chalicelib.domain.tenants import (
    CREATE_KEY_SCHEMA,
    CREATE_TENANT_SCHEMA,
    FEATURES,
    PATCH_TENANT_SCHEMA,
    ApiKey,
    StaleWrite,
    Tenant,
    features_with_defaults,
)
from chalicelib.domain.validation import validate
from chalicelib.logs import logger
from chalicelib.ports.tenants import TenantDirectory
from chalicelib.services.context import TenantContext
from chalicelib.services.paging import page

_WRITE_ATTEMPTS = 5


def _tenant_view(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "name": tenant.name,
        "features": features_with_defaults(tenant.features),
        "created_at": tenant.created_at,
    }


def _key_view(key: ApiKey) -> dict[str, Any]:
    return {"id": key.id, "name": key.name, "role": key.role, "hint": key.hint, "created_at": key.created_at}


def _new_key(role: str, name: str, clock: Clock) -> tuple[ApiKey, str, str]:
    secret = generate_api_key()
    key = ApiKey(
        id=new_id("api_key"), tenant_id="", name=name, role=role, hint=key_hint(secret), created_at=to_rfc3339(clock())
    )
    return key, secret, hash_api_key(secret)


def create_tenant(directory: TenantDirectory, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, CREATE_TENANT_SCHEMA)
    tenant = Tenant(
        id=new_id("tenant"),
        name=body["name"].strip(),
        features=dict(FEATURES),
        settings={},
        created_at=to_rfc3339(clock()),
        version=0,
    )
    key, secret, key_hash = _new_key("admin", "initial admin key", clock)
    directory.create_tenant(tenant, key, key_hash)
    logger.info("tenant created", extra={"tenant_id": tenant.id})
    return _tenant_view(tenant) | {"admin_key": secret}


def _require_tenant(directory: TenantDirectory, tenant_id: str) -> Tenant:
    tenant = directory.get_tenant(tenant_id)
    if tenant is None:
        raise NotFound(f"Tenant {tenant_id} does not exist.", {"field": "id"})
    return tenant


def get_tenant(directory: TenantDirectory, tenant_id: str) -> dict[str, Any]:
    return _tenant_view(_require_tenant(directory, tenant_id))


def list_tenants(directory: TenantDirectory, limit: int, cursor: str | None) -> dict[str, Any]:
    return page("tenants", cursor, lambda start: directory.list_tenants(limit, start), _tenant_view)


def update_tenant(directory: TenantDirectory, tenant_id: str, body: Any) -> dict[str, Any]:
    validate(body, PATCH_TENANT_SCHEMA)
    for _ in range(_WRITE_ATTEMPTS):
        tenant = _require_tenant(directory, tenant_id)
        fields: dict[str, Any] = {}
        if "name" in body:
            fields["name"] = body["name"].strip()
        if "features" in body:
            fields["features"] = {**tenant.features, **body["features"]}
        try:
            updated = directory.save_tenant_fields(tenant, **fields)
        except StaleWrite:
            continue
        logger.info("tenant updated", extra={"tenant_id": tenant_id, "fields": sorted(fields)})
        return _tenant_view(updated)
    raise Conflict("The tenant kept changing while this update was applied; try again.")


def create_api_key(ctx: TenantContext, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, CREATE_KEY_SCHEMA)
    key, secret, key_hash = _new_key(body["role"], body.get("name") or f"{body['role']} key", clock)
    ctx.ports.account.put_api_key(key, key_hash)
    logger.info("api key created", extra={"key_id": key.id, "role": key.role})
    return _key_view(key) | {"key": secret}


def list_api_keys(ctx: TenantContext, limit: int, cursor: str | None) -> dict[str, Any]:
    scope = f"api-keys:{ctx.tenant_id}"
    return page(scope, cursor, lambda start: ctx.ports.account.list_api_keys(limit, start), _key_view)


def delete_api_key(ctx: TenantContext, key_id: str) -> None:
    found = ctx.ports.account.get_api_key(key_id)
    if found is None:
        raise NotFound(f"API key {key_id} does not exist.", {"field": "id"})
    key, key_hash = found
    if key.role == "admin" and ctx.ports.account.admin_key_ids() == [key_id]:
        raise Conflict("This is the tenant's last admin key; create another admin key before deleting it.")
    ctx.ports.account.delete_api_key(key_id, key_hash)
    logger.info("api key deleted", extra={"key_id": key_id})


def _own_tenant(ctx: TenantContext) -> Tenant:
    tenant = ctx.ports.account.tenant()
    if tenant is None:
        raise NotFound(f"Tenant {ctx.tenant_id} does not exist.", {"field": "id"})
    return tenant


def whoami(ctx: TenantContext, stage: str) -> dict[str, Any]:
    """What the key in use may see and do: its tenant, role, features and limits (the console starts here)."""
    tenant = _own_tenant(ctx)
    principal = ctx.principal
    assert principal is not None  # a request's context always has its caller
    return {
        "tenant": {"id": tenant.id, "name": tenant.name},
        "key": {"id": principal.key_id, "name": principal.key_name, "role": principal.role},
        "features": features_with_defaults(tenant.features),
        "limits": settings_rules.effective(tenant.settings)["limits"],
        "stage": stage,
    }


def get_settings(ctx: TenantContext) -> dict[str, Any]:
    return settings_rules.effective(_own_tenant(ctx).settings)


def update_settings(ctx: TenantContext, patch: Any) -> dict[str, Any]:
    for _ in range(_WRITE_ATTEMPTS):
        tenant = _own_tenant(ctx)
        overrides = settings_rules.apply_patch(tenant.settings, patch)
        try:
            updated = ctx.ports.account.save_fields(tenant, settings=overrides)
        except StaleWrite:
            continue
        logger.info("settings updated", extra={"fields": sorted(patch)})
        return settings_rules.effective(updated.settings)
    raise Conflict("The settings kept changing while this update was applied; try again.")


SETTINGS_TTL_SECONDS = 60
"""Workers (sends, job chunks, trigger emails) read a tenant's settings at most this often: a changed send
rate, sender or jobs_at_once takes up to a minute to reach them."""
_cached: dict[str, tuple[float, dict[str, Any]]] = {}


def cached_settings(directory: TenantDirectory, tenant_id: str) -> dict[str, Any]:
    """The tenant's effective settings as a worker sees them (read at most every SETTINGS_TTL_SECONDS)."""
    cached = _cached.get(tenant_id)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    tenant = directory.get_tenant(tenant_id)
    effective = settings_rules.effective(tenant.settings if tenant else None)
    _cached[tenant_id] = (time.monotonic() + SETTINGS_TTL_SECONDS, effective)
    return effective
