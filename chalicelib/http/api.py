"""The one way routes are declared.

``ApiBlueprint.operation`` registers a Chalice route *and* its OpenAPI entry, and
runs every request through the same steps: body size limit, authentication,
role, feature flag, JSON parsing, then the handler; any AppError becomes the
JSON error envelope, anything else a logged 500 envelope. Handlers receive a
``Call`` (principal, body, query) and return plain data.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from chalice import Blueprint, Response

from chalicelib.composition import TenantContexts, tenant_directory
from chalicelib.config import get_config
from chalicelib.domain.cursors import parse_limit
from chalicelib.domain.errors import (
    AppError,
    FeatureDisabled,
    Forbidden,
    InvalidJson,
    PayloadTooLarge,
    ValidationFailed,
)
from chalicelib.domain.values import check_numbers, loads_json
from chalicelib.logs import logger
from chalicelib.services import trail
from chalicelib.services.auth import authenticate
from chalicelib.services.context import TenantContext
from chalicelib.services.principal import Principal


class Access(Enum):
    PUBLIC = "public"
    OPERATOR = "operator"
    VIEWER = "viewer"  # any tenant key: viewers and admins
    ADMIN = "admin"
    PORTAL = "portal"  # a contact's portal token, and nothing else


JSON = "application/json"
PAGE_QUERY: dict[str, dict[str, Any]] = {
    "limit": {"schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "description": "Page size."},
    "cursor": {"schema": {"type": "string"}, "description": "next_cursor of the previous page."},
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    access: Access
    status: int = 200
    description: str | None = None
    request_schema: dict[str, Any] | None = None
    response_schema: dict[str, Any] | None = None
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    feature: str | None = None
    tag: str | None = None
    content_types: tuple[str, ...] = (JSON,)
    response_content_type: str = JSON
    other_responses: dict[int, str] = field(default_factory=dict)  # e.g. {202: "large requests run as a job"}


REGISTRY: list[Operation] = []
"""Every declared operation, in declaration order; the OpenAPI document is built from it."""


@dataclass(frozen=True)
class Call:
    principal: Principal
    body: Any
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes
    contexts: TenantContexts

    @property
    def tenant_id(self) -> str:
        assert self.principal.tenant_id is not None
        return self.principal.tenant_id

    @property
    def context(self) -> TenantContext:
        """The caller's tenant, read at most once in this request (services/context.py)."""
        return self.contexts.of(self.tenant_id)

    def page(self) -> tuple[int, str | None]:
        return parse_limit(self.query.get("limit")), self.query.get("cursor")

    def flag(self, name: str) -> bool:
        """A boolean query parameter such as ``?confirm=true``."""
        value = self.query.get(name, "false").lower()
        if value not in ("true", "false", "1", "0"):
            raise ValidationFailed(name, f"{name} must be true or false.")
        return value in ("true", "1")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", JSON)


@dataclass(frozen=True)
class WithStatus:
    """A handler result whose status differs from the operation's usual one (202 for a job)."""

    status: int
    body: Any


def error_response(error: AppError, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=error.to_body(),
        status_code=error.status,
        headers={"Content-Type": JSON, **error.headers, **(headers or {})},
    )


def parse_json_body(raw: bytes | None) -> Any:
    """The decoded body; every number in it can be stored (a 422 names the first one that cannot)."""
    if not raw:
        raise InvalidJson("The request needs a JSON body.", {"field": "body"})
    try:
        body = loads_json(raw)
    except json.JSONDecodeError as problem:
        raise InvalidJson(
            f"The body is not valid JSON: {problem.msg}.",
            {"field": "body", "line": problem.lineno, "column": problem.colno},
        ) from None
    except (ValueError, RecursionError, UnicodeDecodeError) as problem:
        reason = (
            "it nests too deeply"
            if isinstance(problem, RecursionError)
            else "it is not UTF-8 text"
            if isinstance(problem, UnicodeDecodeError)
            else str(problem)
        )
        raise InvalidJson(f"The body is not valid JSON: {reason}.", {"field": "body"}) from None
    check_numbers(body)
    return body


def _principal_for(access: Access, authorization: str | None) -> Principal:
    if access is Access.PUBLIC:
        return Principal(kind="anonymous")
    principal = authenticate(tenant_directory(), authorization)
    if access is Access.OPERATOR and principal.kind != "operator":
        raise Forbidden("Only the operator key may do this.")
    if access in (Access.VIEWER, Access.ADMIN) and principal.kind != "tenant":
        raise Forbidden("This route needs a tenant API key.")
    if access is Access.PORTAL and principal.kind != "portal":
        raise Forbidden("This route needs a portal token (POST /contacts/{id}/portal-tokens).")
    if access is Access.ADMIN and not principal.is_admin:
        raise Forbidden("This needs an admin key; viewer keys only read.")
    return principal


class ApiBlueprint(Blueprint):
    def operation(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        access: Access,
        **options: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        operation = Operation(method=method.upper(), path=path, summary=summary, access=access, **options)
        REGISTRY.append(operation)

        def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
            def view(**path_params: str) -> Response:
                return self._run(operation, handler, path_params)

            view.__name__ = handler.__name__
            view.__doc__ = handler.__doc__
            methods = [operation.method, "HEAD"] if operation.method == "GET" else [operation.method]
            self.route(path, methods=methods, content_types=list(operation.content_types))(view)
            return handler

        return decorate

    def _run(self, operation: Operation, handler: Callable[..., Any], path_params: dict[str, str]) -> Response:
        request = self.current_request
        request_id = (request.context or {}).get("requestId") or str(uuid.uuid4())
        logger.thread_safe_clear_keys()  # keys of the previous request on this thread must not leak
        logger.thread_safe_append_keys(request_id=request_id, route=f"{operation.method} {operation.path}")
        headers = {"X-Request-Id": request_id}
        try:
            raw = request.raw_body or b""
            if len(raw) > get_config().max_body_bytes:
                raise PayloadTooLarge(
                    f"The body is {len(raw)} bytes; the limit is {get_config().max_body_bytes}.",
                    {"field": "body", "limit_bytes": get_config().max_body_bytes},
                )
            principal = _principal_for(operation.access, request.headers.get("authorization"))
            logger.thread_safe_append_keys(tenant_id=principal.tenant_id)
            contexts = TenantContexts(principal)  # one per tenant this request touches: rate, handler, audit
            trail.admit(contexts.of, principal)
            if operation.feature and not principal.features.get(operation.feature):
                raise FeatureDisabled(
                    f"The {operation.feature} feature is not enabled for this tenant.",
                    {"feature": operation.feature},
                )
            body = (
                parse_json_body(raw)
                if operation.request_schema is not None and JSON in operation.content_types
                else None
            )
            query = dict(request.query_params or {})
            unknown = sorted(set(query) - set(operation.query))
            if unknown:
                raise ValidationFailed(
                    unknown[0], f"{unknown[0]} is not a query parameter of this route.", allowed=sorted(operation.query)
                )
            call = Call(
                principal=principal,
                body=body,
                query=query,
                headers={k.lower(): v for k, v in request.headers.items()},
                raw_body=raw,
                contexts=contexts,
            )
            result = handler(call, **path_params)
            if operation.method != "GET" and operation.access in (Access.ADMIN, Access.OPERATOR):
                action = f"{operation.method} {operation.path}"
                trail.audit(contexts.of, principal, action, path_params, result, request_id)
        except AppError as error:
            logger.info("request refused", extra={"status": error.status, "code": error.code})
            return error_response(error, headers)
        except Exception:
            logger.exception("unhandled error")
            return error_response(AppError("An internal error occurred; it has been logged."), headers)
        if isinstance(result, Response):
            result.headers.update(headers)
            return result
        if result is None:
            return Response(body="", status_code=204, headers=headers)
        if isinstance(result, WithStatus):
            return Response(body=result.body, status_code=result.status, headers={"Content-Type": JSON, **headers})
        return Response(body=result, status_code=operation.status, headers={"Content-Type": JSON, **headers})
