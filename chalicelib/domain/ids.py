"""Server-generated identifiers: a type prefix and a time-ordered random body.

The body is a ULID (48-bit millisecond time + 80 random bits, Crockford base32,
lower case), so ids sort by creation time, which keeps listings stable without a
separate sort key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_BODY_LENGTH = 26

PREFIXES = {
    "tenant": "ten",
    "api_key": "key",
    "contact": "ctc",
    "group": "grp",
    "segment": "seg",
    "campaign": "cmp",
    "trigger": "trg",
    "journey": "jrn",
    "announcement": "ann",
    "challenge": "chl",
    "job": "job",
    "run": "run",
    "change": "chg",
    "webhook": "whk",
    "webhook_event": "evt",
}


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(kind: str, *, now_ms: int | None = None) -> str:
    prefix = PREFIXES[kind]
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    value = (millis << 80) | secrets.randbits(80)
    return f"{prefix}_{_encode(value, _BODY_LENGTH)}"


def stable_id(kind: str, *, at_ms: int, seed: str) -> str:
    """An id that sorts by ``at_ms`` like new_id's, whose random part derives from ``seed``: the same
    (time, seed) gives the same id, so a retried step names what an earlier attempt made."""
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:10], "big")
    return f"{PREFIXES[kind]}_{_encode((at_ms << 80) | digest, _BODY_LENGTH)}"


def looks_like(kind: str, value: object) -> bool:
    """True when ``value`` has the shape of an id of ``kind`` (cheap pre-check before a read)."""
    if not isinstance(value, str):
        return False
    return re.fullmatch(rf"{PREFIXES[kind]}_[{_ALPHABET}]{{{_BODY_LENGTH}}}", value) is not None
