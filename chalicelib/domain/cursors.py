"""Opaque pagination cursors.

A cursor is the storage position to resume from, sealed (domain/tokens.py: encrypted and authenticated)
for its *scope* (tenant and listing), so it shows nothing of the key layout. A cursor that was altered,
forged or issued for another tenant or listing is rejected as a validation error instead of reaching
the database.
"""

from __future__ import annotations

from typing import Any

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.tokens import seal, unseal
from chalicelib.domain.values import whole_number

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def encode_cursor(position: dict[str, Any] | None, *, scope: str, secret: bytes) -> str | None:
    if not position:
        return None
    return seal(position, purpose=f"cursor:{scope}", secret=secret)


def decode_cursor(cursor: str | None, *, scope: str, secret: bytes) -> dict[str, Any] | None:
    if cursor in (None, ""):
        return None
    position = unseal(cursor, purpose=f"cursor:{scope}", secret=secret)
    if position is None:
        raise ValidationFailed("cursor", "The cursor is not one this listing issued.")
    return position


def parse_limit(raw: str | None) -> int:
    return whole_number(raw, "limit", 1, MAX_LIMIT, default=DEFAULT_LIMIT)
