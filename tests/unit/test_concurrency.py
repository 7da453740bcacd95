"""A few requests at once (chalicelib/concurrency.py): results in order, bounded, nothing left running."""

from __future__ import annotations

import threading
import time

import pytest

from chalicelib.concurrency import each_at_once, read_ahead


class Tracker:
    """Counts the calls and the most running at the same time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls: list[int] = []

    def __call__(self, item: int) -> int:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.calls.append(item)
        time.sleep(0.02 if item % 2 == 0 else 0.005)  # later items often finish first
        with self.lock:
            self.running -= 1
        if item == 13:
            raise ValueError("item 13")
        return item * 10


def test_read_ahead_yields_in_order_with_a_few_running_at_once() -> None:
    tracker = Tracker()
    assert list(read_ahead(tracker, range(12), at_once=4)) == [i * 10 for i in range(12)]
    assert 2 <= tracker.most <= 4
    assert sorted(tracker.calls) == list(range(12))


def test_read_ahead_reads_no_further_than_its_reader_lets_it() -> None:
    tracker = Tracker()
    results = read_ahead(tracker, range(40), at_once=3)
    assert next(results) == 0
    time.sleep(0.1)  # any read that was going to start has
    assert len(tracker.calls) <= 4  # the one yielded and three ahead
    results.close()
    time.sleep(0.05)
    assert len(tracker.calls) <= 4  # stopping early cancels the rest


def test_a_failed_read_raises_when_its_turn_comes() -> None:
    results = read_ahead(Tracker(), range(10, 20), at_once=4)
    assert [next(results) for _ in range(3)] == [100, 110, 120]
    with pytest.raises(ValueError, match="item 13"):
        next(results)


def test_each_at_once_runs_together_and_keeps_the_order() -> None:
    together = threading.Barrier(3, timeout=5)  # breaks (and fails the test) unless three run at once

    def meet(item: int) -> int:
        together.wait()
        return -item

    assert each_at_once(meet, range(6), at_once=3) == [0, -1, -2, -3, -4, -5]


def test_each_at_once_tries_every_item_and_then_raises_the_first_failure() -> None:
    tracker = Tracker()
    with pytest.raises(ValueError, match="item 13"):
        each_at_once(tracker, range(20), at_once=4)
    assert sorted(tracker.calls) == list(range(20))
    assert tracker.most <= 4


@pytest.mark.parametrize("at_once", [1, 4])
def test_one_item_or_one_at_a_time_runs_in_the_calling_thread(at_once: int) -> None:
    caller = threading.get_ident()
    seen = []
    items = range(3) if at_once == 1 else range(1)
    assert list(read_ahead(lambda i: seen.append(threading.get_ident()) or i, items, at_once=at_once)) == list(items)
    assert each_at_once(lambda i: seen.append(threading.get_ident()) or i, items, at_once=at_once) == list(items)
    assert set(seen) == {caller}
