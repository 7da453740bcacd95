"""Standing in for one kind of job's chunk worker (the rest of the job machinery stays real)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalicelib.services import jobs


def replace_worker(monkeypatch: Any, kind: str, worker: Callable[..., dict[str, Any]]) -> Callable[..., Any]:
    """Run ``worker`` for chunks of ``kind`` until the test ends; return the real worker."""
    real = jobs._kinds[kind]
    monkeypatch.setitem(jobs._kinds, kind, replace(real, worker=worker))
    return real.worker


def failing(message: str) -> Callable[..., dict[str, Any]]:
    def worker(*_: Any) -> dict[str, Any]:
        raise RuntimeError(message)

    return worker
