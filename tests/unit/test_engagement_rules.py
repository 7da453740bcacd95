"""Windows, goals, progress and reward ids of announcements and challenges (no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain import engagements as rules
from chalicelib.domain.errors import ValidationFailed

WINDOW = rules.Window("2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z")


def purchase(at: str, amount: float | None = 20, kind: str = "purchase") -> dict:
    return {"type": kind, "at": at, "amount": amount}


def test_a_window_is_open_from_its_start_up_to_but_not_including_its_end():
    assert not WINDOW.is_open(datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC))
    assert WINDOW.is_open(datetime(2026, 11, 1, tzinfo=UTC))
    assert WINDOW.is_open(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))
    assert not WINDOW.is_open(datetime(2026, 12, 1, tzinfo=UTC))


def test_check_window_normalises_offsets_and_names_the_bad_field():
    window = rules.check_window("2026-11-01T02:00:00+02:00", "2026-11-02T00:00:00Z")
    assert window == rules.Window("2026-11-01T00:00:00.000Z", "2026-11-02T00:00:00.000Z")
    for starts, ends, field in (
        ("yesterday", "2026-11-02T00:00:00Z", "starts_at"),
        ("2026-11-01T00:00:00Z", None, "ends_at"),
        ("2026-11-01T00:00:00Z", "2026-11-01T00:00:00Z", "ends_at"),
    ):
        with pytest.raises(ValidationFailed) as raised:
            rules.check_window(starts, ends)
        assert raised.value.details["field"] == field


def test_progress_counts_only_the_goal_event_type_inside_the_window():
    events = [
        purchase("2026-10-31T23:59:59Z"),  # before
        purchase("2026-11-01T00:00:00Z"),
        purchase("2026-11-15T12:00:00Z", amount=None),
        purchase("2026-11-20T12:00:00Z", kind="refund"),
        purchase("2026-12-01T00:00:00Z"),  # at the end: outside
    ]
    assert rules.progress({"event_type": "purchase", "count": 2}, WINDOW, events).view() == {
        "done": 2,
        "target": 2,
        "complete": True,
    }
    by_amount = rules.progress({"event_type": "purchase", "amount": 25}, WINDOW, events)
    assert (by_amount.done, by_amount.complete) == (20, False)


@given(st.lists(st.floats(min_value=0.01, max_value=1000).map(lambda a: round(a, 2)), max_size=30))
def test_amount_progress_is_the_rounded_sum_and_completes_exactly_at_the_target(amounts):
    events = [purchase("2026-11-10T00:00:00Z", amount=a) for a in amounts]
    total = round(sum(amounts), 2)
    assert rules.progress({"event_type": "purchase", "amount": max(total, 0.01)}, WINDOW, events).complete == (
        total >= 0.01
    )
    assert rules.progress({"event_type": "purchase", "amount": total + 0.01}, WINDOW, events).complete is False


def test_rewards_are_normalised_and_bad_amounts_or_currencies_name_their_field():
    assert rules.check_reward({"amount": 5}, "reward") == {"amount": 5, "currency": "points", "note": None}
    assert rules.check_reward({"amount": 2.5, "currency": "EUR", "note": "  hi "}, "actions[0]") == {
        "amount": 2.5,
        "currency": "EUR",
        "note": "hi",
    }
    for raw, field in (({"amount": 1.001}, "reward.amount"), ({"amount": 1, "currency": "usd"}, "reward.currency")):
        with pytest.raises(ValidationFailed) as raised:
            rules.check_reward(raw, "reward")
        assert raised.value.details["field"] == field


def test_a_reward_id_is_stable_per_cause_and_differs_between_causes():
    assert rules.reward_id("challenge|chl_1|ctc_1") == rules.reward_id("challenge|chl_1|ctc_1")
    ids = {rules.reward_id(f"challenge|chl_{n}|ctc_1") for n in range(1_000)}
    assert len(ids) == 1_000 and all(i.startswith("rwd_") for i in ids)
