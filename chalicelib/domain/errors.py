"""Errors the service answers with.

Every rule that rejects something raises one of these; the HTTP layer turns
them into the JSON error envelope of API.md. They carry no HTTP machinery so
pure modules can raise them freely.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status = 500
    code = "internal_error"
    headers: dict[str, str] = {}  # noqa: RUF012 (read-only: subclasses set their own per instance)

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(AppError):
    status, code = 400, "bad_request"


class InvalidJson(AppError):
    status, code = 400, "invalid_json"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class FeatureDisabled(AppError):
    status, code = 403, "feature_disabled"


class NotFound(AppError):
    status, code = 404, "not_found"


class MethodNotAllowed(AppError):
    status, code = 405, "method_not_allowed"


class Conflict(AppError):
    status, code = 409, "conflict"


class ConfirmationRequired(AppError):
    status, code = 409, "confirmation_required"


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(AppError):
    status, code = 415, "unsupported_media_type"


class ValidationFailed(AppError):
    """422: the request is well-formed JSON but breaks a rule.

    ``field`` is the JSON path of the offending value (``criteria.any[2].value``).
    """

    status, code = 422, "validation_error"

    def __init__(self, field: str, message: str, **extra: Any) -> None:
        super().__init__(message, {"field": field, **extra})
        self.field = field


def changed_meanwhile(what: str, field: str = "version") -> Conflict:
    """A conditional write lost to another writer (``what`` is e.g. "Campaign cmp_…"): read it again."""
    return Conflict(f"{what} changed meanwhile; read it again.", {"field": field})


class LimitExceeded(ValidationFailed):
    code = "limit_exceeded"


class UnknownTags(ValidationFailed):
    code = "unknown_tags"


class RateLimited(AppError):
    """429: the key used its requests for this second; ``Retry-After`` says when to come back."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, retry_after: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, {**(details or {}), "retry_after": retry_after})
        self.headers = {"Retry-After": str(retry_after)}
