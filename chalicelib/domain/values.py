"""One parser per kind of value that arrives from outside, other than date-times (domain/clock.py).

- **Numbers** must be storable in DynamoDB exactly: finite, at most 38 significant
  digits, magnitude 1e-130 to 9.99…e125 (or zero). JSON bodies and JSON Lines rows are
  decoded by :func:`loads_json`, which keeps over-long integers exact (instead of
  Python's 4,300-digit refusal) so that :func:`unstorable_number` can name the field.
- **Whole numbers in query strings** (``limit``, ``top``, ``expires_in``…) are ASCII
  digits only: ``³``, ``٣`` or ``+5`` are refused, not half-parsed.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

from chalicelib.domain.errors import ValidationFailed

MAX_SIGNIFICANT_DIGITS = 38
MIN_EXPONENT, MAX_EXPONENT = -130, 125
NUMBER_RANGE_TEXT = "at most 38 significant digits, magnitude between 1e-130 and 9.9e125 (or 0)"
_ASCII_WHOLE = re.compile(r"[0-9]{1,18}", re.ASCII)
_LONG_INTEGER = 64
"""Integer literals longer than this are decoded as Decimal: exact, and never near Python's 4,300-digit limit."""


def _bounded_int(text: str) -> int | Decimal:
    return int(text) if len(text) <= _LONG_INTEGER else Decimal(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads_json(text: str | bytes) -> Any:
    """``json.loads`` without NaN/Infinity and without Python's integer-length refusal.

    Raises ``json.JSONDecodeError`` (with line and column) or ``ValueError`` with a plain message."""
    return json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)


def number_problem(value: int | float | Decimal) -> str | None:
    """Why a number cannot be stored (None when it can)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not exact.is_finite():
        return "must be a finite number"
    if exact.is_zero():
        return None
    _, digits, exponent = exact.as_tuple()
    significant = len(digits)
    while significant > 1 and digits[significant - 1] == 0:
        significant -= 1
    if significant > MAX_SIGNIFICANT_DIGITS:
        return f"has {significant} significant digits; numbers have {NUMBER_RANGE_TEXT}"
    magnitude = int(exponent) + len(digits) - 1
    if not MIN_EXPONENT <= magnitude <= MAX_EXPONENT:
        return f"is out of range; numbers have {NUMBER_RANGE_TEXT}"
    return None


def unstorable_number(instance: Any, path: str = "") -> tuple[str, str] | None:
    """The first number in a decoded JSON document that cannot be stored: (JSON path, reason)."""
    stack: list[tuple[str, Any]] = [(path, instance)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{where}.{key}" if where else str(key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{where}[{index}]", item) for index, item in reversed(list(enumerate(value))))
        elif isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            problem = number_problem(value)
            if problem:
                return where or "body", problem
    return None


def check_numbers(instance: Any, path: str = "") -> None:
    """Raise a 422 naming the first number of ``instance`` that DynamoDB could not store."""
    found = unstorable_number(instance, path)
    if found:
        raise ValidationFailed(found[0], f"{found[0]} {found[1]}.", expected="number")


def check_number(value: Any, field: str) -> int | float:
    """A JSON number (not a boolean) that can be stored; a 422 naming ``field`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValidationFailed(field, f"{field} must be a number.", expected="number")
    problem = number_problem(value)
    if problem:
        raise ValidationFailed(field, f"{field} {problem}.", expected="number")
    return int(value) if isinstance(value, Decimal) else value


def number_from_text(text: str, field: str) -> int | float:
    """A CSV cell read as a number (``12``, ``-3.5``, ``1e3``), checked like a JSON number."""
    stripped = text.strip()
    if not re.fullmatch(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", stripped, re.ASCII):
        raise ValidationFailed(field, f"{field} must be a number.", expected="number")
    exact = Decimal(stripped)
    problem = number_problem(exact)
    if problem:
        raise ValidationFailed(field, f"{field} {problem}.", expected="number")
    if exact == exact.to_integral_value() and not re.search(r"[.eE]", stripped):
        return int(stripped)
    return float(stripped)


def whole_number(raw: str | None, field: str, low: int, high: int, default: int | None = None) -> int:
    """A query-string whole number of ASCII digits within [low, high] (``default`` when absent)."""
    if raw is None and default is not None:
        return default
    if not isinstance(raw, str) or not _ASCII_WHOLE.fullmatch(raw) or not low <= int(raw) <= high:
        raise ValidationFailed(
            field, f"{field} must be a whole number from {low} to {high}.", minimum=low, maximum=high
        )
    return int(raw)
