"""Time in one place: RFC 3339 UTC formatting and parsing, and an injectable clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def to_rfc3339(moment: datetime) -> str:
    """Format as ``2026-11-22T10:15:30.123Z`` (UTC, millisecond precision)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 date-time with an explicit offset; raise ValueError otherwise."""
    if not isinstance(text, str) or "T" not in text.upper():
        raise ValueError("not an RFC 3339 date-time")
    normalised = text.strip()
    if normalised[-1] in "zZ":
        normalised = normalised[:-1] + "+00:00"
    moment = datetime.fromisoformat(normalised)
    if moment.tzinfo is None:
        raise ValueError("RFC 3339 date-times need an offset such as Z")
    return moment.astimezone(UTC)
