"""Requests sent a few at once. A bulk write or a read of many shards is tens of requests that do not depend on
each other; one after the other, a request spends most of its time waiting for the answers (py-spy on a
1,000-event request under ``make run``: two thirds of it in ``socket.readinto``). botocore clients are safe to
share between threads, and its connection pool holds 10 connections, so a few at once never wait for one."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

AT_ONCE = 4


def read_ahead(read: Callable[[T], R], items: Iterable[T], at_once: int = AT_ONCE) -> Iterator[R]:
    """``read(item)`` for each item, yielded in order, with up to ``at_once`` reads running ahead of the one
    yielded (so at most that many results wait in memory). A reader that stops early cancels the reads not
    yet started; a failed read raises when its turn comes."""
    items = list(items)
    if len(items) <= 1 or at_once <= 1:
        yield from map(read, items)
        return
    with ThreadPoolExecutor(max_workers=min(at_once, len(items))) as pool:
        running: deque[Future[R]] = deque()
        try:
            for item in items:
                running.append(pool.submit(read, item))
                if len(running) > at_once:
                    yield running.popleft().result()
            while running:
                yield running.popleft().result()
        finally:
            for future in running:
                future.cancel()


def each_at_once(work: Callable[[T], R], items: Iterable[T], at_once: int = AT_ONCE) -> list[R]:
    """``work(item)`` for every item, up to ``at_once`` at a time; their results in order. Every item is
    attempted even when one fails; then the first failure (in item order) is raised."""
    items = list(items)
    if len(items) <= 1 or at_once <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(at_once, len(items))) as pool:
        futures = [pool.submit(work, item) for item in items]
    return [future.result() for future in futures]
