"""Resolve a bearer key to a Principal: the operator, a tenant key with its role, or a contact's portal token."""

from __future__ import annotations

from chalicelib.config import get_config
from chalicelib.domain import settings as settings_rules
from chalicelib.domain import tokens
from chalicelib.domain.clock import Clock, system_clock
from chalicelib.domain.errors import Unauthorized
from chalicelib.domain.keys import API_KEY_PREFIX, hash_api_key, is_operator_key
from chalicelib.domain.tenants import features_with_defaults
from chalicelib.ports.tenants import TenantDirectory
from chalicelib.services.principal import Principal


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("Send an Authorization: Bearer <key> header.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <key>'.")
    return token.strip()


def authenticate(directory: TenantDirectory, authorization: str | None) -> Principal:
    token = bearer_token(authorization)
    if is_operator_key(token, get_config().operator_key):
        return Principal(kind="operator")
    if not token.startswith(API_KEY_PREFIX):
        return _portal_principal(directory, token)
    lookup = directory.find_key_by_hash(hash_api_key(token))
    if lookup is None:
        raise Unauthorized("The key is not known.")
    tenant = directory.get_tenant(lookup.tenant_id)
    if tenant is None:
        raise Unauthorized("The key is not known.")
    return Principal(
        kind="tenant",
        tenant_id=tenant.id,
        role=lookup.role,
        key_id=lookup.key_id,
        key_name=lookup.name,
        features=features_with_defaults(tenant.features),
        settings=settings_rules.effective(tenant.settings),
    )


def _portal_principal(directory: TenantDirectory, token: str, clock: Clock = system_clock) -> Principal:
    payload = tokens.unseal(token, purpose=tokens.PORTAL, secret=get_config().secret) or {}
    tenant_id, contact_id, expires = payload.get("t"), payload.get("c"), payload.get("exp")
    if not isinstance(tenant_id, str) or not isinstance(contact_id, str) or not isinstance(expires, int):
        raise Unauthorized("The key is not known.")
    if expires <= clock().timestamp():
        raise Unauthorized("The portal token has expired; ask for a new link.")
    tenant = directory.get_tenant(tenant_id)
    if tenant is None:
        raise Unauthorized("The key is not known.")
    return Principal(
        kind="portal", tenant_id=tenant.id, contact_id=contact_id, features=features_with_defaults(tenant.features)
    )
