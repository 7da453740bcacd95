"""Builds the OpenAPI 3.1 document from the operation registry."""

from __future__ import annotations

import re
from typing import Any

from chalicelib.http.api import JSON, REGISTRY, Access, Operation

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "examples": ["validation_error"]},
                "message": {"type": "string"},
                "details": {"type": "object", "description": "field names the offending JSON path"},
            },
        }
    },
}

_ERROR_TEXT = {
    400: "Malformed request (for example invalid JSON).",
    401: "Missing or unknown key.",
    403: "The key lacks the right, or the feature is disabled.",
    404: "Not found (or belongs to another tenant).",
    409: "Conflict, or confirmation required.",
    413: "The body is too large.",
    415: "Unsupported content type.",
    422: "The request breaks a rule; details.field names where.",
    429: "The key used its requests for this second (settings.requests_per_second); Retry-After says when.",
}


def _error_statuses(operation: Operation) -> list[int]:
    statuses = [400]
    if operation.access is not Access.PUBLIC:
        statuses += [401, 403]
    if "{" in operation.path:
        statuses.append(404)
    if operation.method in ("POST", "PATCH", "PUT", "DELETE"):
        statuses += [409, 413]
    if operation.request_schema is not None or operation.query or "{" in operation.path:
        statuses.append(422)  # path ids are checked too (a tag name's spelling, …)
    if operation.access in (Access.ADMIN, Access.VIEWER, Access.PORTAL):
        statuses.append(429)
    if operation.content_types != (JSON,):
        statuses.append(415)
    return sorted(set(statuses))


def _operation_object(operation: Operation) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in re.findall(r"{(\w+)}", operation.path)
    ]
    parameters += [
        {
            "name": name,
            "in": "query",
            "required": spec.get("required", False),
            "schema": spec["schema"],
            "description": spec.get("description", ""),
        }
        for name, spec in operation.query.items()
    ]
    success: dict[str, Any] = {"description": operation.description or operation.summary}
    if operation.status != 204:
        success["content"] = {operation.response_content_type: {"schema": operation.response_schema or {}}}
    responses: dict[str, Any] = {str(operation.status): success}
    for status, text in operation.other_responses.items():
        responses[str(status)] = {"description": text, "content": {JSON: {"schema": {"type": "object"}}}}
    for status in _error_statuses(operation):
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    document: dict[str, Any] = {
        "operationId": f"{operation.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', operation.path.lower()).strip('_')}",
        "summary": operation.summary,
        "tags": [operation.tag or operation.path.strip("/").split("/")[0] or "meta"],
        "parameters": parameters,
        "responses": responses,
        "x-access": operation.access.value,
        "security": [] if operation.access is Access.PUBLIC else [{"bearer": []}],
    }
    if operation.description:
        document["description"] = operation.description
    if operation.feature:
        document["x-feature"] = operation.feature
    if operation.request_schema is not None:
        document["requestBody"] = {
            "required": True,
            "content": {content_type: {"schema": operation.request_schema} for content_type in operation.content_types},
        }
    return document


def build_spec() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for operation in REGISTRY:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation_object(operation)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Segments",
            "version": "1.0.0",
            "description": "Contacts, tags, groups and events; segments over them; campaigns, "
            "triggers, announcements and challenges targeted at segments.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR_SCHEMA},
            "responses": {
                f"E{status}": {
                    "description": text,
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
                for status, text in _ERROR_TEXT.items()
            },
        },
    }
