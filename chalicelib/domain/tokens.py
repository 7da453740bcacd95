"""Opaque tokens: links we send (unsubscribe), tokens we hand out (portal) and pagination cursors.

A token is its payload (compact JSON) encrypted and authenticated with AES-SIV under a key derived from
the signing secret and the token's *purpose* (which also goes in as associated data), in URL-safe
base64. Nothing of the payload can be read from the token (an unsubscribe link no longer shows the
address or the tenant to every proxy that logs URLs), and a token altered in any byte, made for
another purpose, or not made by us opens as ``None`` — the tag is checked in constant time by
OpenSSL. AES-SIV is deterministic: the same payload gives the same token, so a message rendered twice
carries the same link.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

MAX_TOKEN_LENGTH = 4_096
PORTAL = "portal"
"""Purpose of portal tokens (services/portal.py)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@lru_cache(maxsize=64)
def _cipher(secret: bytes, purpose: str) -> AESSIV:
    """A 512-bit AES-SIV key per purpose, derived from the secret (HMAC-SHA512 as the derivation)."""
    return AESSIV(hmac.new(secret, b"segments-token:" + purpose.encode(), hashlib.sha512).digest())


def seal(payload: dict[str, Any], *, purpose: str, secret: bytes) -> str:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return _b64(_cipher(secret, purpose).encrypt(body, [purpose.encode()]))


def unseal(token: Any, *, purpose: str, secret: bytes) -> dict[str, Any] | None:
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
        return None
    try:
        sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if _b64(sealed) != token:
        return None  # one payload, one spelling: no padding or alphabet variants
    try:
        payload = json.loads(_cipher(secret, purpose).decrypt(sealed, [purpose.encode()]))
    except (InvalidTag, ValueError):
        return None
    return payload if isinstance(payload, dict) else None
