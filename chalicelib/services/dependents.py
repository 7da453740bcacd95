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
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from chalicelib.domain.errors import ConfirmationRequired
from chalicelib.services.context import TenantContext

Finder = Callable[[TenantContext, str], list[dict[str, Any]]]
"""(tenant, key) → [{"type", "id", "name"}]"""
Release = Callable[[TenantContext, str, str], None]
"""(tenant, key, reason): drop the reference; a dependent left unusable says why."""
Registration = tuple[str, Finder, Release]
"""(kind referenced — one of KINDS —, finder, release): what a service declares in its DEPENDENTS."""
_finders: dict[str, list[Finder]] = defaultdict(list)
_releases: dict[str, list[Release]] = defaultdict(list)


Item = TypeVar("Item")


def save_each(
    find: Callable[[], list[Item]],
    change: Callable[[Item], Item],
    save: Callable[[Item, Item], None],
    stale: type[Exception],
) -> None:
    """What a release does to its dependents: ``save(item, change(item))`` for every item ``find`` returns; when
    one changed meanwhile (``save`` raised ``stale``), look again from the start."""
    while True:
        try:
            for item in find():
                save(item, change(item))
            return
        except stale:
            continue


KINDS = ("tag", "group", "segment", "announcement", "challenge", "campaign", "trigger", "webhook")


def register(registrations: Iterable[Registration]) -> None:
    """Called once, by chalicelib/composition.py, with every service's DEPENDENTS: (kind referenced — one of
    KINDS —, finder, release)."""
    for kind, finder, drop in registrations:
        assert kind in KINDS, kind
        _finders[kind].append(finder)
        _releases[kind].append(drop)


def find(kind: str, ctx: TenantContext, key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for finder in _finders[kind]:
        found += finder(ctx, key)
    return found


def release(kind: str, ctx: TenantContext, key: str, reason: str) -> None:
    for drop in _releases[kind]:
        drop(ctx, key, reason)


def review(
    kind: str,
    ctx: TenantContext,
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
    users = find(kind, ctx, key)
    counted = {name: value for name, value in (impact or {}).items() if value}
    if not confirm and (users or counted or always):
        affected = ", ".join(
            [f"{len(users)} dependent(s)"] + [f"{v} {n.replace('_', ' ')}" for n, v in counted.items()]
        )
        raise ConfirmationRequired(
            f"Deleting {label} affects {affected}; review them and repeat with ?confirm=true.",
            {"dependents": users, **(impact or {})},
        )
