"""One way to serve a page of a listing with a signed cursor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.config import get_config
from chalicelib.domain.cursors import decode_cursor, encode_cursor

Position = dict[str, Any] | None


def page(
    scope: str,
    cursor: str | None,
    fetch: Callable[[Position], tuple[list[Any], Position]],
    view: Callable[[Any], Any] = lambda item: item,
) -> dict[str, Any]:
    """Decode ``cursor`` for ``scope`` (tenant and listing), fetch from there, and sign where to go next."""
    secret = get_config().secret
    items, last = fetch(decode_cursor(cursor, scope=scope, secret=secret))
    return {"items": [view(item) for item in items], "next_cursor": encode_cursor(last, scope=scope, secret=secret)}
