"""Who depends on what, and what happens to them when it goes: every reference between objects.

Features that reference something (a segment its tags, groups and segments; campaigns, triggers,
announcements and challenges their segments; triggers their tags and announcements …) register a
finder, and optionally a release, for the *kind* referenced. Every delete goes through
:func:`review`: with dependents (or whatever else the caller counts) it answers 409
``confirmation_required`` listing them, and once confirmed the caller deletes and :func:`release`
applies each dependent's documented cascade. New features plug in without touching any delete code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from chalicelib.domain.errors import ConfirmationRequired

Finder = Callable[[str, str], list[dict[str, Any]]]
"""(tenant_id, key) → [{"type", "id", "name"}]"""
Release = Callable[[str, str, str], None]
"""(tenant_id, key, reason): drop the reference; a dependent left unusable says why."""
_finders: dict[str, list[Finder]] = defaultdict(list)
_releases: dict[str, list[Release]] = defaultdict(list)


KINDS = ("tag", "group", "segment", "announcement", "challenge", "campaign", "trigger")


def register(kind: str, finder: Finder, release: Release | None = None) -> None:
    """``kind`` is what is referenced: one of KINDS."""
    assert kind in KINDS, kind
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


def review(
    kind: str,
    tenant_id: str,
    key: str,
    label: str,
    confirm: bool,
    *,
    impact: dict[str, Any] | None = None,
    always: bool = False,
) -> None:
    """The impact review before deleting ``label`` (e.g. "segment 'VIPs'"): without ``confirm``, a 409 listing
    the dependents and ``impact`` (counts the caller adds, such as members) when there are any, or ``always``;
    with it, nothing: the caller deletes, then calls :func:`release`."""
    users = find(kind, tenant_id, key)
    counted = {name: value for name, value in (impact or {}).items() if value}
    if not confirm and (users or counted or always):
        affected = ", ".join(
            [f"{len(users)} dependent(s)"] + [f"{v} {n.replace('_', ' ')}" for n, v in counted.items()]
        )
        raise ConfirmationRequired(
            f"Deleting {label} affects {affected}; review them and repeat with ?confirm=true.",
            {"dependents": users, **(impact or {})},
        )
