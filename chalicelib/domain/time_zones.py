"""IANA time zone names (``Europe/Paris``): the one parser for them. The tenant's ``time_zone`` setting and a
contact's built-in ``time_zone`` attribute both go through it, so a stored zone always loads later."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from chalicelib.domain.errors import ValidationFailed

DEFAULT_TIME_ZONE = "UTC"


@cache
def _known() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def check_time_zone(value: Any, field: str) -> str:
    """``value`` when it names an IANA time zone, else ValidationFailed naming ``field``."""
    if not isinstance(value, str) or value not in _known():
        raise ValidationFailed(field, f'{field} is an IANA time zone name such as "Europe/Paris" or "UTC".')
    return value


def zone(name: str | None) -> zoneinfo.ZoneInfo:
    """The zone of a stored name (UTC when none, or when the name is no longer in the database)."""
    if name and name in _known():
        return zoneinfo.ZoneInfo(name)
    return zoneinfo.ZoneInfo(DEFAULT_TIME_ZONE)
