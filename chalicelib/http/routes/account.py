"""A tenant's own API keys and settings."""

from __future__ import annotations

from chalicelib.config import get_config
from chalicelib.domain.settings import PATCH_SCHEMA as SETTINGS_PATCH_SCHEMA
from chalicelib.domain.settings import SETTINGS_SCHEMA
from chalicelib.domain.tenants import API_KEY_SCHEMA, CREATE_KEY_SCHEMA
from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call
from chalicelib.http.schemas import page_of
from chalicelib.services import tenants, trail

blueprint = ApiBlueprint(__name__)


@blueprint.operation(
    "POST",
    "/api-keys",
    summary="Create an API key (the key is shown once)",
    access=Access.ADMIN,
    status=201,
    request_schema=CREATE_KEY_SCHEMA,
    response_schema=API_KEY_SCHEMA,
)
def create_api_key(call: Call) -> dict:
    return tenants.create_api_key(call.context, call.body)


@blueprint.operation(
    "GET",
    "/api-keys",
    summary="List API keys (never the keys themselves)",
    access=Access.ADMIN,
    query=PAGE_QUERY,
    response_schema=page_of(API_KEY_SCHEMA),
)
def list_api_keys(call: Call) -> dict:
    return tenants.list_api_keys(call.context, *call.page())


@blueprint.operation(
    "DELETE",
    "/api-keys/{key_id}",
    summary="Revoke an API key",
    access=Access.ADMIN,
    status=204,
    description="The last admin key cannot be revoked (409): create another admin key first.",
)
def delete_api_key(call: Call, key_id: str) -> None:
    tenants.delete_api_key(call.context, key_id)


ME_SCHEMA = {
    "type": "object",
    "required": ["tenant", "key", "features", "limits", "stage"],
    "properties": {
        "tenant": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}},
        "key": {
            "type": "object",
            "properties": {
                "id": {"type": ["string", "null"]},
                "name": {"type": ["string", "null"]},
                "role": {"enum": ["admin", "viewer"]},
            },
        },
        "features": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "limits": {"type": "object"},
        "stage": {"type": "string", "description": "local, dev or prod: the console shows the Mailbox only locally."},
    },
}


@blueprint.operation(
    "GET",
    "/me",
    summary="The key in use: its tenant, role, the tenant's features and limits",
    description="Answers even while the segments feature is off, so a client can say why screens are closed.",
    access=Access.VIEWER,
    response_schema=ME_SCHEMA,
)
def me(call: Call) -> dict:
    return tenants.whoami(call.context, get_config().stage)


@blueprint.operation(
    "GET",
    "/settings",
    summary="Read the tenant's settings (sender, limits, send rate, frequency cap)",
    access=Access.VIEWER,
    response_schema=SETTINGS_SCHEMA,
)
def get_settings(call: Call) -> dict:
    return tenants.get_settings(call.context)


@blueprint.operation(
    "PATCH",
    "/settings",
    summary="Change settings (JSON Merge Patch; null resets a field to its default)",
    access=Access.ADMIN,
    request_schema=SETTINGS_PATCH_SCHEMA,
    response_schema=SETTINGS_SCHEMA,
)
def update_settings(call: Call) -> dict:
    return tenants.update_settings(call.context, call.body)


@blueprint.operation(
    "GET",
    "/audit-log",
    summary="Every admin and operator write of this tenant, newest first (kept 400 days)",
    description="Key id and name, action (method and route), target ids, time and request id; no bodies.",
    access=Access.ADMIN,
    query=PAGE_QUERY,
    response_schema=page_of(trail.AUDIT_ENTRY_SCHEMA),
)
def audit_log(call: Call) -> dict:
    return trail.audit_log(call.context, *call.page())
