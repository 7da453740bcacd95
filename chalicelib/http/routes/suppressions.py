"""Suppressions (addresses never mailed) and the public unsubscribe links of RFC 8058."""

from __future__ import annotations

from chalice import Response

from chalicelib.composition import tenant_context
from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call
from chalicelib.http.routes.segments import FEATURE as SEGMENTS_FEATURE
from chalicelib.http.schemas import page_of
from chalicelib.services import suppressions

blueprint = ApiBlueprint(__name__)
FEATURE = {**SEGMENTS_FEATURE, "tag": "campaigns"}
HTML = "text/html; charset=utf-8"
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@blueprint.operation(
    "GET", "/suppressions", summary="Addresses never mailed (bounces, complaints, unsubscribes, manual)",
    access=Access.VIEWER, query=PAGE_QUERY, response_schema=page_of(suppressions.SUPPRESSION_SCHEMA), **FEATURE,
)  # fmt: skip
def list_suppressions(call: Call) -> dict:
    return suppressions.list_suppressions(call.context, *call.page())


@blueprint.operation(
    "POST", "/suppressions", summary="Suppress an address", access=Access.ADMIN, status=201,
    request_schema=suppressions.ADD_SUPPRESSION_SCHEMA, response_schema=suppressions.SUPPRESSION_SCHEMA, **FEATURE,
)  # fmt: skip
def add_suppression(call: Call) -> dict:
    return suppressions.add_suppression(call.context, call.body)


@blueprint.operation(
    "DELETE", "/suppressions/{email}", summary="Lift a suppression (an unsubscribe cannot be lifted: 409)",
    access=Access.ADMIN, status=204, **FEATURE,
)  # fmt: skip
def remove_suppression(call: Call, email: str) -> None:
    suppressions.remove_suppression(call.context, email)


@blueprint.operation(
    "GET", "/unsubscribe/{token}", summary="The unsubscribe page (asks to confirm; GET never unsubscribes)",
    access=Access.PUBLIC, response_content_type="text/html", tag="campaigns",
)  # fmt: skip
def unsubscribe_page(call: Call, token: str) -> Response:
    return Response(body=suppressions.unsubscribe_page(token), status_code=200, headers={"Content-Type": HTML})


@blueprint.operation(
    "POST", "/unsubscribe/{token}", summary="Unsubscribe (RFC 8058 one-click: body List-Unsubscribe=One-Click)",
    access=Access.PUBLIC, content_types=FORMS, response_content_type="text/html", tag="campaigns",
)  # fmt: skip
def unsubscribe(call: Call, token: str) -> Response:
    return Response(
        body=suppressions.unsubscribe(tenant_context, token), status_code=200, headers={"Content-Type": HTML}
    )
