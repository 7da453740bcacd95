"""A/B test rules (domain/ab_tests.py) and ISO 8601 durations (domain/durations.py): no I/O."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from chalicelib.domain import ab_tests
from chalicelib.domain.durations import parse_duration
from chalicelib.domain.errors import ValidationFailed

NAMES = ["A", "B", "C"]


def test_who_is_tested_and_with_which_variant_is_the_same_every_time_and_near_the_share():
    assignments = [ab_tests.assign("cmp_1", f"ctc_{n}", NAMES, 20) for n in range(20_000)]
    assert assignments == [ab_tests.assign("cmp_1", f"ctc_{n}", NAMES, 20) for n in range(20_000)]
    tested = [a for a in assignments if a.in_test]
    assert abs(len(tested) / len(assignments) - 0.20) < 0.01
    shares = Counter(a.variant for a in tested)
    assert set(shares) == set(NAMES) and all(abs(n / len(tested) - 1 / 3) < 0.03 for n in shares.values())
    assert all(a.variant is None for a in assignments if not a.in_test)
    other = [ab_tests.assign("cmp_2", f"ctc_{n}", NAMES, 20).in_test for n in range(2_000)]
    assert other != [a.in_test for a in assignments[:2_000]]  # each campaign draws its own test group


def test_the_best_rate_wins_ties_go_to_the_earlier_variant_and_a_fixed_winner_wins_anyway():
    stats = {"A": {"sent": 100, "opened": 30, "clicked": 2}, "B": {"sent": 50, "opened": 20, "clicked": 1}}
    assert ab_tests.winner(["A", "B"], stats, "opens", None) == "B"  # 40 % beats 30 %
    assert ab_tests.winner(["A", "B"], stats, "clicks", None) == "A"  # 2 % and 2 %: the earlier
    assert ab_tests.winner(["A", "B"], {}, "opens", None) == "A"  # nothing sent: the first
    assert ab_tests.winner(["A", "B"], stats, "opens", "A") == "A"


VARIANTS = [{"name": "A", "subject": "a"}, {"name": "B", "subject": "b"}]


@pytest.mark.parametrize(
    ("variants", "ab_test", "field"),
    [
        ([{"name": "A", "subject": "a"}], {"test_percent": 20, "wait": "PT1H", "metric": "opens"}, "variants"),
        ([*VARIANTS, *VARIANTS[:1]], {"test_percent": 20, "wait": "PT1H", "metric": "opens"}, "variants"),
        (VARIANTS, None, "ab_test"),
        (None, {"test_percent": 20, "wait": "PT1H", "metric": "opens"}, "variants"),
        (VARIANTS, {"test_percent": 20, "wait": "PT30S", "metric": "opens"}, "ab_test.wait"),
        (VARIANTS, {"test_percent": 20, "wait": "P8D", "metric": "opens"}, "ab_test.wait"),
        (VARIANTS, {"test_percent": 20, "wait": "1h", "metric": "opens"}, "ab_test.wait"),
        (VARIANTS, {"test_percent": 20, "wait": "PT1H"}, "ab_test.metric"),
        (VARIANTS, {"test_percent": 20, "wait": "PT1H", "winner": "Z"}, "ab_test.winner"),
    ],
)
def test_an_ab_test_that_cannot_run_is_refused_naming_the_field(variants, ab_test, field):
    with pytest.raises(ValidationFailed) as refused:
        ab_tests.check(variants, ab_test, parse_duration)
    assert refused.value.details["field"] == field


def test_a_fixed_winner_needs_no_metric():
    ab_tests.check(VARIANTS, {"test_percent": 10, "wait": "P1D", "winner": "B"}, parse_duration)


@pytest.mark.parametrize(
    ("text", "length"),
    [("PT30M", timedelta(minutes=30)), ("PT4H", timedelta(hours=4)), ("P1D", timedelta(days=1)),
     ("P1DT12H", timedelta(days=1, hours=12)), ("P2W", timedelta(weeks=2)), ("PT90S", timedelta(seconds=90))],
)  # fmt: skip
def test_iso_durations(text, length):
    assert parse_duration(text, "wait") == length


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "P1Y", "P1M", "PT1.5H", "-PT1H", "pt1h", "1h", 5, None])
def test_what_is_not_an_iso_duration_is_refused_naming_the_field(text):
    with pytest.raises(ValidationFailed) as refused:
        parse_duration(text, "ab_test.wait")
    assert refused.value.details["field"] == "ab_test.wait"
