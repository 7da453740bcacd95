"""Operator routes: tenants and their feature flags."""

from __future__ import annotations

from chalicelib.composition import tenant_directory
from chalicelib.domain.tenants import CREATE_TENANT_SCHEMA, PATCH_TENANT_SCHEMA, TENANT_SCHEMA
from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call
from chalicelib.http.schemas import page_of
from chalicelib.services import tenants

blueprint = ApiBlueprint(__name__)


@blueprint.operation(
    "POST",
    "/tenants",
    summary="Create a tenant and its first admin key (shown once)",
    access=Access.OPERATOR,
    status=201,
    request_schema=CREATE_TENANT_SCHEMA,
    response_schema=TENANT_SCHEMA,
)
def create_tenant(call: Call) -> dict:
    return tenants.create_tenant(tenant_directory(), call.body)


@blueprint.operation(
    "GET",
    "/tenants",
    summary="List tenants",
    access=Access.OPERATOR,
    query=PAGE_QUERY,
    response_schema=page_of(TENANT_SCHEMA),
)
def list_tenants(call: Call) -> dict:
    return tenants.list_tenants(tenant_directory(), *call.page())


@blueprint.operation(
    "GET",
    "/tenants/{tenant_id}",
    summary="Read a tenant",
    access=Access.OPERATOR,
    response_schema=TENANT_SCHEMA,
)
def get_tenant(call: Call, tenant_id: str) -> dict:
    return tenants.get_tenant(tenant_directory(), tenant_id)


@blueprint.operation(
    "PATCH",
    "/tenants/{tenant_id}",
    summary="Rename a tenant or switch its features",
    description='Segments are enabled per tenant: {"features": {"segments": true}}.',
    access=Access.OPERATOR,
    request_schema=PATCH_TENANT_SCHEMA,
    response_schema=TENANT_SCHEMA,
)
def update_tenant(call: Call, tenant_id: str) -> dict:
    return tenants.update_tenant(tenant_directory(), tenant_id, call.body)
