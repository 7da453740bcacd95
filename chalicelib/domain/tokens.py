"""Signed tokens for links we send (unsubscribe) and hand out (portal).

``payload.signature``: the payload is compact JSON in URL-safe base64, the
signature an HMAC-SHA256 over the purpose and the payload, compared in constant
time. A token altered in any byte, made for another purpose, or not made by us
verifies as ``None``; callers answer 404 without saying which.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

MAX_TOKEN_LENGTH = 2_048
PORTAL = "portal"
"""Purpose of portal tokens (services/portal.py)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mac(secret: bytes, purpose: str, payload: bytes) -> bytes:
    return hmac.new(secret, purpose.encode() + b"\x00" + payload, hashlib.sha256).digest()


def sign(payload: dict[str, Any], *, purpose: str, secret: bytes) -> str:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(body)}.{_b64(_mac(secret, purpose, body))}"


def verify(token: str, *, purpose: str, secret: bytes) -> dict[str, Any] | None:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        return None
    body_text, mac_text = token.split(".")
    try:
        body = base64.urlsafe_b64decode(body_text + "=" * (-len(body_text) % 4))
        mac = base64.urlsafe_b64decode(mac_text + "=" * (-len(mac_text) % 4))
    except (binascii.Error, ValueError):
        return None
    if _b64(body) != body_text or _b64(mac) != mac_text:
        return None  # one payload, one spelling: no padding or alphabet variants
    if not hmac.compare_digest(mac, _mac(secret, purpose, body)):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
