"""HTTP middleware that puts Chalice's own error responses (405, 415, 500 …)
into the same JSON envelope as ours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice import Response

from chalicelib.domain import errors
from chalicelib.http.api import error_response

_BY_STATUS: dict[int, type[errors.AppError]] = {
    400: errors.BadRequest,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
}


def _is_envelope(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("error"), dict)


def as_envelope(status: int, message: str) -> errors.AppError:
    kind = _BY_STATUS.get(status, errors.AppError)
    error = kind(message)
    error.status = status
    return error


def envelope_middleware(event: Any, get_response: Callable[[Any], Response]) -> Response:
    response = get_response(event)
    if response.status_code < 400 or _is_envelope(response.body):
        return response
    body = response.body if isinstance(response.body, dict) else {}
    message = str(body.get("Message") or "The request could not be served.")
    if response.status_code >= 500:
        message = "An internal error occurred; it has been logged."
    passthrough = {k: v for k, v in response.headers.items() if k.lower() == "allow"}
    return error_response(as_envelope(response.status_code, message), passthrough)
