"""Who depends on a tag, a group or a segment.

Features that reference these things (segments, campaigns, triggers …) register
a finder here; deleting asks every finder, so new features plug in without
touching the delete code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

Finder = Callable[[str, str], list[dict[str, Any]]]
_finders: dict[str, list[Finder]] = defaultdict(list)


def register(kind: str, finder: Finder) -> None:
    """``kind`` is "tag", "group" or "segment"; finder(tenant_id, key) → [{"type", "id", "name"}]."""
    _finders[kind].append(finder)


def find(kind: str, tenant_id: str, key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for finder in _finders[kind]:
        found += finder(tenant_id, key)
    return found
