"""Unauthenticated service routes: health and the OpenAPI document."""

from __future__ import annotations

from chalicelib.http.api import Access, ApiBlueprint, Call
from chalicelib.http.openapi import build_spec

blueprint = ApiBlueprint(__name__)


@blueprint.operation(
    "GET",
    "/health",
    summary="Liveness check",
    access=Access.PUBLIC,
    response_schema={"type": "object", "properties": {"status": {"const": "ok"}}},
)
def health(call: Call) -> dict:
    return {"status": "ok"}


@blueprint.operation(
    "GET",
    "/openapi.json",
    summary="This API's OpenAPI 3.1 document",
    access=Access.PUBLIC,
    response_schema={"type": "object"},
)
def openapi(call: Call) -> dict:
    return build_spec()
