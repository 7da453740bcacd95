"""EventBridge schedule expressions: ``rate(…)`` and ``cron(…)``.

Parsed exactly as EventBridge accepts them (so what runs locally is what deploys)
and able to compute the next firing time, which the local scheduler and the
schedule triggers use. All times are UTC, as EventBridge rules are.

cron fields: minutes hours day-of-month month day-of-week year. One of
day-of-month / day-of-week must be ``?``. Supported: ``*`` ``?`` lists, ranges,
steps, month and day names, ``L`` (last day of month / ``5L`` last Thursday),
``W`` (nearest weekday) and ``#`` (``2#1`` first Monday).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.errors import ValidationFailed

_RATE = re.compile(r"^rate\(([0-9]+) (minute|minutes|hour|hours|day|days)\)$", re.ASCII)
_MONTHS = {name: i for i, name in enumerate(calendar.month_abbr) if name}
_MONTHS = {k.upper(): v for k, v in _MONTHS.items()}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_ASCII_DIGITS = re.compile(r"[0-9]{1,4}", re.ASCII)
MAX_RATE_SECONDS = 10 * 366 * 86_400
"""A rate of up to ten years: longer ones would overflow the calendar long before they fire."""
LAST_YEAR = 2199
"""EventBridge's cron years run to 2199."""


class InvalidSchedule(ValueError):
    pass


@dataclass(frozen=True)
class Rate:
    seconds: int

    def next_after(self, moment: datetime) -> datetime:
        return moment + timedelta(seconds=self.seconds)


def _parse_rate(text: str) -> Rate:
    match = _RATE.match(text)
    if not match:
        raise InvalidSchedule("rate must look like rate(5 minutes)")
    digits, unit = match.group(1), match.group(2)
    value = int(digits) if len(digits) <= 12 else MAX_RATE_SECONDS + 1
    if value < 1:
        raise InvalidSchedule("rate value must be a positive whole number")
    if (value == 1) != (not unit.endswith("s")):
        raise InvalidSchedule("use the singular unit for 1 and the plural otherwise, as EventBridge does")
    seconds = value * {"minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")]
    if seconds > MAX_RATE_SECONDS:
        raise InvalidSchedule("a rate is at most ten years (3660 days)")
    return Rate(seconds)


def _number(token: str, names: dict[str, int], low: int, high: int) -> int:
    upper = token.upper()
    if upper in names:
        return names[upper]
    if not _ASCII_DIGITS.fullmatch(token):
        raise InvalidSchedule(f"{token!r} is not a number or name")
    value = int(token)
    if not low <= value <= high:
        raise InvalidSchedule(f"{value} is outside {low}-{high}")
    return value


def _expand(field: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    names = names or {}
    values: set[int] = set()
    for part in field.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not _ASCII_DIGITS.fullmatch(step_text) or int(step_text) < 1:
                raise InvalidSchedule(f"bad step in {field!r}")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _number(first, names, low, high), _number(last, names, low, high)
            if start > end:
                raise InvalidSchedule(f"range {part!r} runs backwards")
        else:
            start = _number(part, names, low, high)
            end = high if step > 1 else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    day_of_month: str
    months: frozenset[int]
    day_of_week: str
    years: frozenset[int]

    def _dom_matches(self, day: date) -> bool:
        spec = self.day_of_month
        last = calendar.monthrange(day.year, day.month)[1]
        if spec == "?":
            return True
        if spec == "L":
            return day.day == last
        if spec.endswith("W"):
            target = min(int(spec[:-1]), last)
            nearest = date(day.year, day.month, target)
            if nearest.weekday() == 5:
                nearest = nearest - timedelta(days=1) if target > 1 else nearest + timedelta(days=2)
            elif nearest.weekday() == 6:
                nearest = nearest + timedelta(days=1) if target < last else nearest - timedelta(days=2)
            return day == nearest
        return day.day in _expand(spec, 1, 31)

    def _dow_matches(self, day: date) -> bool:
        spec = self.day_of_week
        if spec == "?":
            return True
        weekday = (day.weekday() + 1) % 7 + 1  # EventBridge: 1 = Sunday
        if spec.endswith("L"):
            wanted = _number(spec[:-1], _DAYS, 1, 7)
            return weekday == wanted and day.day + 7 > calendar.monthrange(day.year, day.month)[1]
        if "#" in spec:
            name, nth = spec.split("#", 1)
            if not _ASCII_DIGITS.fullmatch(nth) or not 1 <= int(nth) <= 5:
                raise InvalidSchedule(f"{spec!r}: the occurrence after # must be 1-5")
            return weekday == _number(name, _DAYS, 1, 7) and (day.day - 1) // 7 + 1 == int(nth)
        return weekday in _expand(spec, 1, 7, _DAYS)

    def next_after(self, moment: datetime) -> datetime:
        """The first firing after ``moment``; InvalidSchedule when there is none (by 2199, EventBridge's last
        year). Walks only the years and months the expression names, so "never" is found quickly."""
        start = (moment.astimezone(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
        for year in sorted(y for y in self.years if y >= start.year):
            for month in sorted(m for m in self.months if (year, m) >= (start.year, start.month)):
                for day_number in range(1, calendar.monthrange(year, month)[1] + 1):
                    day = date(year, month, day_number)
                    if day < start.date() or not (self._dom_matches(day) and self._dow_matches(day)):
                        continue
                    for hour in sorted(self.hours):
                        for minute in sorted(self.minutes):
                            candidate = datetime(year, month, day_number, hour, minute, tzinfo=UTC)
                            if candidate >= start:
                                return candidate
        raise InvalidSchedule("the expression never fires (no matching date up to 2199)")


def _parse_cron(text: str) -> Cron:
    if not (text.startswith("cron(") and text.endswith(")")):
        raise InvalidSchedule("cron must look like cron(0 12 * * ? *)")
    fields = text[5:-1].split()
    if len(fields) != 6:
        raise InvalidSchedule("cron takes six fields: minutes hours day-of-month month day-of-week year")
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise InvalidSchedule("exactly one of day-of-month and day-of-week must be '?'")
    cron = Cron(
        minutes=_expand(minutes, 0, 59),
        hours=_expand(hours, 0, 23),
        day_of_month=dom.upper(),
        months=_expand(month, 1, 12, _MONTHS),
        day_of_week=dow.upper(),
        years=_expand(year, 1970, LAST_YEAR),
    )
    probe = date(2024, 1, 1)
    if dom not in ("?", "L") and not dom.upper().endswith("W"):
        _expand(dom, 1, 31)
    elif dom.upper().endswith("W"):
        _number(dom[:-1], {}, 1, 31)
    cron._dow_matches(probe)  # raises InvalidSchedule for malformed day-of-week
    return cron


def parse_schedule(expression: object) -> Rate | Cron:
    """Parse ``rate(…)`` or ``cron(…)``; raise InvalidSchedule with the reason."""
    text = expression.strip() if isinstance(expression, str) else ""
    if text.startswith("rate("):
        return _parse_rate(text)
    if text.startswith("cron("):
        return _parse_cron(text)
    raise InvalidSchedule("expected rate(…) or cron(…)")


def run_after(expression: str, due_at: str, now: datetime) -> str:
    """The next run of a schedule whose run due at ``due_at`` is starting now: runs missed meanwhile (the
    service was down, the schedule paused) are skipped, not made up."""
    return to_rfc3339(parse_schedule(expression).next_after(max(now, parse_rfc3339(due_at))))


def validate_schedule(expression: object, field: str, now: datetime) -> Rate | Cron:
    """A schedule that parses and fires at least once after ``now``; a 422 naming ``field`` otherwise."""
    try:
        schedule = parse_schedule(expression)
        schedule.next_after(now)
    except InvalidSchedule as problem:
        raise ValidationFailed(field, f"{field}: {problem}.") from None
    return schedule
