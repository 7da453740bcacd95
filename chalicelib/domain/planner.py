"""Planning over the tag index: what the posting lists answer alone, and who can match at all.

The tag index (storage/contacts.py) keeps, per tag, the ordinals of the contacts
carrying it, plus one list of every contact (``EVERYONE``). Two questions about
a checked criteria decide how it is evaluated:

- :func:`index_formula`: is it made only of tags (after inlining the segments it
  includes)? Then set algebra over posting lists gives the exact members and no
  contact item is read.
- :func:`narrowing`: which tag-only formula must every member satisfy? Its
  members are the only candidates worth reading; a shard with few of them reads
  those contacts instead of the whole shard.

Both work on canonical criteria (domain/criteria.py); pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from chalicelib.domain.criteria import node_kind

EVERYONE = "#everyone"
"""Posting list of every contact; not a valid tag name, so it cannot collide with one."""

Library = Callable[[str], dict[str, Any] | None]
"""Segment id → its criteria (None when it is gone)."""


def _inline(node: dict[str, Any], library: Library) -> dict[str, Any] | None:
    """The criteria with every ``segment`` node replaced by its criteria (None if one is gone)."""
    kind = node_kind(node)
    if kind in ("all", "any"):
        children = [_inline(child, library) for child in node[kind]]
        return None if any(c is None for c in children) else {kind: children}
    if kind == "not":
        inner = _inline(node["not"], library)
        return None if inner is None else {"not": inner}
    if kind == "segment":
        included = library(node["segment"])
        return None if included is None else _inline(included, library)
    return node


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a criteria, the root first."""
    yield node
    kind = node_kind(node)
    if kind in ("all", "any"):
        for child in node[kind]:
            yield from _nodes(child)
    elif kind == "not":
        yield from _nodes(node["not"])


def _kinds(node: dict[str, Any]) -> set[str]:
    return {node_kind(n) for n in _nodes(node)}


def _tag_only(node: dict[str, Any]) -> bool:
    return _kinds(node) <= {"all", "any", "not", "tag"}


def index_formula(criteria: dict[str, Any], library: Library) -> dict[str, Any] | None:
    """``criteria`` as a tag-only formula the index answers exactly, or None."""
    inlined = _inline(criteria, library)
    return inlined if inlined is not None and _tag_only(inlined) else None


def _necessary(node: dict[str, Any]) -> dict[str, Any] | None:
    """A tag-only formula implied by ``node`` (None: nothing about tags is implied)."""
    if _tag_only(node):
        return node
    kind = node_kind(node)
    if kind == "all":
        implied = [n for n in (_necessary(child) for child in node["all"]) if n is not None]
        return None if not implied else implied[0] if len(implied) == 1 else {"all": implied}
    if kind == "any":
        alternatives = [_necessary(child) for child in node["any"]]
        known = [n for n in alternatives if n is not None]
        return {"any": known} if len(known) == len(alternatives) else None
    return None  # a negated non-tag condition, an attribute, a group or an event says nothing about tags


def narrowing(criteria: dict[str, Any], library: Library) -> dict[str, Any] | None:
    """A tag-only formula every contact matching ``criteria`` satisfies, or None."""
    inlined = _inline(criteria, library)
    return None if inlined is None else _necessary(inlined)


def uses_events(criteria: dict[str, Any], library: Library) -> bool:
    """Whether evaluating ``criteria`` needs the contacts' events (else contact items alone do)."""
    inlined = _inline(criteria, library)
    return inlined is None or "event" in _kinds(inlined)


def tags_of(formula: dict[str, Any]) -> set[str]:
    return {node["tag"] for node in _nodes(formula) if "tag" in node}


def needs_everyone(formula: dict[str, Any]) -> bool:
    """Whether the formula complements a set (``not``), which needs the list of every contact."""
    return "not" in _kinds(formula)


def postings_needed(formula: dict[str, Any]) -> set[str]:
    """The posting lists :func:`evaluate_index` reads for ``formula``."""
    return tags_of(formula) | ({EVERYONE} if needs_everyone(formula) else set())


def evaluate_index(formula: dict[str, Any], postings: Mapping[str, np.ndarray]) -> np.ndarray:
    """Members of a tag-only formula as a sorted array of ordinals.

    ``postings`` maps each tag of :func:`postings_needed` (``EVERYONE`` included
    when needed) to its ordinals. Each list becomes a bitmap over the ordinals,
    so and/or/not are single vectorised passes.
    """
    size = 1 + max((int(p.max()) for p in postings.values() if len(p)), default=0)
    bitmaps: dict[str, np.ndarray] = {}

    def bitmap(tag: str) -> np.ndarray:
        if tag not in bitmaps:
            bits = np.zeros(size, dtype=bool)
            bits[postings[tag]] = True
            bitmaps[tag] = bits
        return bitmaps[tag]

    def run(node: dict[str, Any]) -> np.ndarray:
        kind = node_kind(node)
        if kind == "tag":
            return bitmap(node["tag"])
        if kind == "not":
            return bitmap(EVERYONE) & ~run(node["not"])
        parts = [run(child) for child in node[kind]]
        return np.logical_and.reduce(parts) if kind == "all" else np.logical_or.reduce(parts)

    return np.flatnonzero(run(formula)).astype(np.int64)
