"""Time in one place: the one RFC 3339 parser, its range, UTC formatting, and an injectable clock.

Every date-time that arrives from outside (bodies, query strings, CSV and JSON Lines
cells, criteria values) goes through :func:`parse_rfc3339` and is stored by
:func:`to_rfc3339`, so what is stored is always readable again:

- accepted: ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`` (``t``/``z`` in either case),
  nothing else that ``datetime.fromisoformat`` would also take (week dates, missing
  seconds or offset, ``24:00``, leap seconds);
- the range is :data:`EARLIEST` to just before :data:`LATEST`, in UTC, after the offset
  is applied (``9999-12-31T23:59:59-01:00`` is past it);
- stored and returned as ``2026-11-22T10:15:30.123Z``: UTC, four-digit year,
  milliseconds.

Values read back from storage go through :func:`stored_moment`, which never
raises: a value that cannot be read (written before these rules) is ``None``, and
the reader shows the record with the problem named instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from chalicelib.domain.errors import ValidationFailed

Clock = Callable[[], datetime]

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)
"""Exclusive: the last accepted moment is 9999-12-30T23:59:59.999Z, so a day can still be added to any
stored moment without leaving what ``datetime`` can hold."""
RANGE_TEXT = "between 1900-01-01T00:00:00Z and 9999-12-30T23:59:59Z"

_RFC3339 = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt]"
    r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<offset_hours>\d{2}):(?P<offset_minutes>\d{2}))",
    re.ASCII,
)


class InvalidMoment(ValueError):
    """Not an RFC 3339 date-time, or outside the accepted range (the message says which)."""


def system_clock() -> datetime:
    return datetime.now(UTC)


def to_rfc3339(moment: datetime) -> str:
    """Format as ``2026-11-22T10:15:30.123Z`` (UTC, four-digit year, millisecond precision)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    utc = moment.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
        f".{utc.microsecond // 1000:03d}Z"
    )


def parse_rfc3339(text: Any) -> datetime:
    """Parse an RFC 3339 date-time with an explicit offset, within the range; raise InvalidMoment otherwise."""
    if not isinstance(text, str):
        raise InvalidMoment("an RFC 3339 date-time is text, such as 2026-01-31T09:00:00Z")
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise InvalidMoment("not an RFC 3339 date-time such as 2026-01-31T09:00:00Z (with seconds and an offset)")
    parts = {name: int(value) for name, value in match.groupdict().items() if value and value.isdigit()}
    fraction = match.group("fraction") or ""
    offset = timedelta(hours=parts.get("offset_hours", 0), minutes=parts.get("offset_minutes", 0))
    if offset >= timedelta(hours=24) or parts.get("offset_minutes", 0) > 59:
        raise InvalidMoment("the offset is not a valid ±HH:MM")
    if match.group("sign") == "-":
        offset = -offset
    try:
        local = datetime(
            parts["year"],
            parts["month"],
            parts["day"],
            parts["hour"],
            parts["minute"],
            parts["second"],
            int(fraction[:6].ljust(6, "0")),
            tzinfo=timezone(offset),
        )
        moment = local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidMoment(f"not a valid date-time, or outside the accepted range ({RANGE_TEXT})") from None
    if not EARLIEST <= moment < LATEST:
        raise InvalidMoment(f"outside the accepted range ({RANGE_TEXT})")
    return moment


def looks_like_rfc3339(text: Any) -> bool:
    """Shaped like an RFC 3339 date-time, whether or not it is a valid one in the range."""
    return isinstance(text, str) and _RFC3339.fullmatch(text) is not None


def moment_field(value: Any, field: str) -> datetime:
    """An input date-time; a 422 naming ``field`` otherwise."""
    try:
        return parse_rfc3339(value)
    except InvalidMoment as problem:
        raise ValidationFailed(field, f"{field}: {problem}.", expected="datetime") from None


def check_moment(value: Any, field: str) -> str:
    """An input date-time in its stored form; a 422 naming ``field`` otherwise."""
    return to_rfc3339(moment_field(value, field))


def stored_moment(text: Any) -> datetime | None:
    """A date-time read back from storage, or None when it cannot be read (it never raises)."""
    try:
        return parse_rfc3339(text)
    except InvalidMoment:
        return None
