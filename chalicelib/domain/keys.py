"""API keys and the operator key: generation, hashing, constant-time comparison.

Tenant keys carry 256 bits of randomness, so a plain SHA-256 digest is a safe
stored form (the same approach as GitHub or Stripe tokens); the key itself is
shown once, at creation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "sgk_"
ROLES = ("admin", "viewer")


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_hint(key: str) -> str:
    """The few leading characters shown in listings so people can tell keys apart."""
    return key[: len(API_KEY_PREFIX) + 4] + "…"


def is_operator_key(presented: str, operator_key: str) -> bool:
    return hmac.compare_digest(presented.encode("utf-8"), operator_key.encode("utf-8"))
