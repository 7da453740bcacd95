"""ISO 8601 durations (``PT30M``, ``PT4H``, ``P1D``, ``P1DT12H``, ``P2W``): the one parser for them. Years and
months are refused (their length depends on the date); criteria windows keep their own short form (``60d``)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from chalicelib.domain.errors import ValidationFailed

_ISO = re.compile(r"P(?:(\d{1,4})W)?(?:(\d{1,5})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,7})M)?(?:(\d{1,9})S)?)?")


def parse_duration(value: Any, field: str) -> timedelta:
    """``value`` as a timedelta, or ValidationFailed naming ``field``."""
    match = _ISO.fullmatch(value) if isinstance(value, str) else None
    if match is None or not any(match.groups()) or value.endswith("T"):
        raise ValidationFailed(field, f'{field} is an ISO 8601 duration such as "PT30M", "PT4H" or "P1D".')
    weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
