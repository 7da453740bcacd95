"""Opaque, signed pagination cursors.

A cursor is the storage position to resume from, serialised and signed with an
HMAC that also covers the *scope* (tenant and listing). A cursor that was altered,
forged or issued for another tenant or listing is rejected as a validation error
instead of reaching the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.values import whole_number

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, scope: str, payload: bytes) -> str:
    return _b64(hmac.new(secret, scope.encode() + b"\x00" + payload, hashlib.sha256).digest()[:16])


def encode_cursor(position: dict[str, Any] | None, *, scope: str, secret: bytes) -> str | None:
    if not position:
        return None
    payload = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(payload)}.{_mac(secret, scope, payload)}"


def decode_cursor(cursor: str | None, *, scope: str, secret: bytes) -> dict[str, Any] | None:
    if cursor in (None, ""):
        return None
    invalid = ValidationFailed("cursor", "The cursor is not one this listing issued.")
    try:
        body, mac = cursor.split(".", 1)
        payload = _unb64(body)
    except (ValueError, AttributeError):
        raise invalid from None
    if not hmac.compare_digest(mac.encode("utf-8"), _mac(secret, scope, payload).encode("ascii")):
        raise invalid
    position = json.loads(payload)
    if not isinstance(position, dict):
        raise invalid
    return position


def parse_limit(raw: str | None) -> int:
    return whole_number(raw, "limit", 1, MAX_LIMIT, default=DEFAULT_LIMIT)
