"""A/B tests of a campaign: who is in the test, which variant each gets, and which variant wins. No I/O.

A campaign with ``variants`` (2–4, each a subject and bodies) and ``ab_test`` (``test_percent`` of the audience,
a ``wait`` and a ``metric``: opens or clicks, or a fixed ``winner``) sends in two phases:

1. **Test**: each recipient is in the test share or not by a hash of (campaign, contact) — the same on every
   worker, every delivery and every shard — and a test recipient gets the variant another hash picks. The rest
   of the audience is held.
2. **Winner**: once ``wait`` has passed since the campaign started, the variant with the best rate of unique
   opens (or clicks) per mail sent in the test wins (ties: the earlier variant; a fixed ``winner`` wins
   whatever the rates), recorded once; the held recipients then get that variant.

The variants are fixed when the campaign starts (it cannot be edited while it sends), and the winner is one
recorded choice among them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from chalicelib.domain.errors import ValidationFailed

METRICS = ("opens", "clicks")
MAX_VARIANTS = 4
MIN_WAIT = timedelta(minutes=1)
MAX_WAIT = timedelta(days=7)
VARIANT_COUNTERS = ("sent", "delivered", "opened", "clicked", "opens", "clicks")

VARIANT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "subject"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 40, "pattern": "^[A-Za-z0-9 _.-]+$"},
        "subject": {"type": "string", "minLength": 1, "maxLength": 4_000},
        "html": {"type": ["string", "null"]},
        "text": {"type": ["string", "null"]},
    },
}
AB_TEST_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "required": ["test_percent", "wait"],
    "properties": {
        "test_percent": {"type": "integer", "minimum": 1, "maximum": 50},
        "wait": {"type": "string", "maxLength": 40, "description": "ISO 8601 duration, PT1M to P7D"},
        "metric": {"type": "string", "enum": list(METRICS)},
        "winner": {"type": ["string", "null"], "maxLength": 40, "description": "A fixed winner, whatever the rates"},
    },
}


@dataclass(frozen=True)
class Assignment:
    in_test: bool
    variant: str | None  # the test variant; None for the held rest


def _fraction(*parts: str) -> float:
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(campaign_id: str, contact_id: str, variants: list[str], test_percent: int) -> Assignment:
    """Deterministic: the same (campaign, contact) always lands in the same place."""
    if _fraction(campaign_id, contact_id, "test") * 100 >= test_percent:
        return Assignment(False, None)
    index = int(_fraction(campaign_id, contact_id, "variant") * len(variants))
    return Assignment(True, variants[min(index, len(variants) - 1)])


def winner(variants: list[str], stats: dict[str, dict[str, int]], metric: str, fixed: str | None) -> str:
    """The winning variant's name (see the module's rule)."""
    if fixed:
        return fixed
    counter = "opened" if metric == "opens" else "clicked"

    def rate(name: str) -> float:
        counts = stats.get(name, {})
        return counts.get(counter, 0) / counts["sent"] if counts.get("sent") else 0.0

    return max(variants, key=lambda name: (rate(name), -variants.index(name)))


def check(variants: list[dict[str, Any]] | None, ab_test: dict[str, Any] | None, parse_wait: Any) -> None:
    """What the schema cannot say: 2–4 variants with distinct names, a test with them (and only with them), a
    wait inside the bounds, a metric or a fixed winner that names a variant."""
    if not variants and not ab_test:
        return
    if not variants or not 2 <= len(variants) <= MAX_VARIANTS:
        raise ValidationFailed("variants", f"An A/B test needs 2 to {MAX_VARIANTS} variants.")
    names = [v["name"] for v in variants]
    if len(set(names)) < len(names):
        raise ValidationFailed("variants", "Each variant needs a name of its own.")
    if not ab_test:
        raise ValidationFailed("ab_test", "Variants need ab_test: {test_percent, wait, metric}.")
    wait = parse_wait(ab_test["wait"], "ab_test.wait")
    if not MIN_WAIT <= wait <= MAX_WAIT:
        raise ValidationFailed("ab_test.wait", "ab_test.wait is from PT1M to P7D.")
    if ab_test.get("winner") is not None and ab_test["winner"] not in names:
        raise ValidationFailed("ab_test.winner", f"ab_test.winner {ab_test['winner']!r} is not a variant.")
    if ab_test.get("winner") is None and ab_test.get("metric") not in METRICS:
        raise ValidationFailed("ab_test.metric", "ab_test.metric is opens or clicks (or give ab_test.winner).")
