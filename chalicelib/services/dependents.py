"""Who depends on a tag, a group or a segment, and what happens to them when it goes.

Features that reference these things (segments, campaigns, triggers …) register
a finder, and optionally a release, here. Deleting asks every finder (for the
impact review) and, once confirmed, calls every release, so new features plug
in without touching the delete code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

Finder = Callable[[str, str], list[dict[str, Any]]]
"""(tenant_id, key) → [{"type", "id", "name"}]"""
Release = Callable[[str, str, str], None]
"""(tenant_id, key, reason): drop the reference; a dependent left unusable says why."""
_finders: dict[str, list[Finder]] = defaultdict(list)
_releases: dict[str, list[Release]] = defaultdict(list)


def register(kind: str, finder: Finder, release: Release | None = None) -> None:
    """``kind`` is "tag", "group" or "segment"."""
    _finders[kind].append(finder)
    if release:
        _releases[kind].append(release)


def find(kind: str, tenant_id: str, key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for finder in _finders[kind]:
        found += finder(tenant_id, key)
    return found


def release(kind: str, tenant_id: str, key: str, reason: str) -> None:
    for drop in _releases[kind]:
        drop(tenant_id, key, reason)
