from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.schedules import InvalidSchedule, parse_schedule, validate_schedule
from tests.support.hostile import HOSTILE_SCHEDULES


def at(*parts):
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    "expression, seconds",
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600), ("rate(2 days)", 172800)],
)
def test_rates(expression, seconds):
    assert (parse_schedule(expression).next_after(at(2026, 1, 1)) - at(2026, 1, 1)).total_seconds() == seconds


@pytest.mark.parametrize(
    "expression, after, expected",
    [
        ("cron(0 12 * * ? *)", at(2026, 11, 22, 13, 0), at(2026, 11, 23, 12, 0)),
        ("cron(0 12 * * ? *)", at(2026, 11, 22, 11, 59), at(2026, 11, 22, 12, 0)),
        ("cron(15 10 ? * MON-FRI *)", at(2026, 11, 21, 0, 0), at(2026, 11, 23, 10, 15)),  # Sat → Mon
        ("cron(0/15 * * * ? *)", at(2026, 1, 1, 0, 7), at(2026, 1, 1, 0, 15)),
        ("cron(0 8 1 * ? *)", at(2026, 1, 15), at(2026, 2, 1, 8, 0)),
        ("cron(0 0 L * ? *)", at(2026, 2, 3), at(2026, 2, 28, 0, 0)),
        ("cron(0 9 ? * 6L *)", at(2026, 11, 1), at(2026, 11, 27, 9, 0)),  # last Friday of Nov 2026
        ("cron(0 9 ? * 2#1 *)", at(2026, 11, 3), at(2026, 12, 7, 9, 0)),  # first Monday
        ("cron(0 9 15W * ? *)", at(2026, 11, 1), at(2026, 11, 16, 9, 0)),  # 15th is a Sunday
        ("cron(30 6 ? JAN,JUL MON 2027)", at(2026, 11, 22), at(2027, 1, 4, 6, 30)),
    ],
)
def test_cron_next_fire_times(expression, after, expected):
    assert parse_schedule(expression).next_after(after) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "rate(0 minutes)",
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(5 weeks)",
        "rate(five minutes)",
        "cron(0 12 * * * *)",
        "cron(0 12 ? * ? *)",
        "cron(0 12 * *)",
        "cron(61 * * * ? *)",
        "cron(0 25 * * ? *)",
        "cron(0 0 ? * FUNDAY *)",
        "cron(0 0 ? * 2#9 *)",
        "cron(0 0 5-1 * ? *)",
        "cron(0/0 * * * ? *)",
        "every day",
        "",
        "cron(0 0 32 * ? *)",
    ],
)
def test_invalid_expressions_are_refused(expression):
    with pytest.raises(InvalidSchedule):
        parse_schedule(expression)


def test_validate_schedule_names_the_field():
    with pytest.raises(ValidationFailed) as refused:
        validate_schedule("cron(nope)", "event.expression", at(2026, 11, 30))
    assert refused.value.field == "event.expression"
    with pytest.raises(ValidationFailed):
        validate_schedule(None, "event.expression", at(2026, 11, 30))


@pytest.mark.parametrize("expression", HOSTILE_SCHEDULES)
def test_hostile_schedules_are_refused_at_save_time(expression):
    with pytest.raises(ValidationFailed) as refused:
        validate_schedule(expression, "event.expression", at(2026, 11, 30))
    assert refused.value.field == "event.expression"


def test_rare_but_real_schedules_are_kept_and_found_quickly():
    now = at(2026, 11, 30)
    assert validate_schedule("cron(0 0 29 2 ? *)", "e", now).next_after(now) == at(2028, 2, 29)
    assert validate_schedule("cron(0 0 1 1 ? 2199)", "e", now).next_after(now) == at(2199, 1, 1)
    assert validate_schedule("rate(3660 days)", "e", now).next_after(now) == now + timedelta(days=3660)
