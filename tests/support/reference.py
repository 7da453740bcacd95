"""The reference interpreter: the criteria language's meaning, one contact at a time.

Deliberately naive (plain recursion, no columns, no caching) so it can be read
against the docstring of chalicelib/domain/criteria.py. Property tests hold the
compiled engine to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from chalicelib.domain.attributes import BUILT_IN
from chalicelib.domain.clock import parse_rfc3339
from chalicelib.domain.criteria import CONTACT_FIELDS, contact_value, duration_seconds, is_number, typed_value


def matches(
    criteria: dict[str, Any],
    contact: Any,
    events: Sequence[Mapping[str, Any]],
    now: datetime,
    attribute_types: Mapping[str, str],
    resolve_segment: Callable[[str], dict[str, Any] | None] = lambda segment_id: None,
) -> bool:
    def node(n: dict[str, Any]) -> bool:
        if "all" in n:
            return all(node(child) for child in n["all"])
        if "any" in n:
            return any(node(child) for child in n["any"])
        if "not" in n:
            return not node(n["not"])
        if "tag" in n:
            return n["tag"] in contact.tags
        if "group" in n:
            return contact.group == n["group"]
        if "segment" in n:
            referenced = resolve_segment(n["segment"])
            assert referenced is not None
            return node(referenced)
        if "attr" in n:
            kind = CONTACT_FIELDS.get(n["attr"]) or attribute_types.get(n["attr"]) or BUILT_IN.get(n["attr"])
            return _attribute(n["op"], n.get("value"), typed_value(contact_value(contact, n["attr"]), kind), kind, now)
        return _event(n, events, now)

    return node(criteria)


def _attribute(op: str, value: Any, actual: Any, kind: str, now: datetime) -> bool:
    if op == "ne":
        return not _attribute("eq", value, actual, kind, now)
    if op == "not_in":
        return not _attribute("in", value, actual, kind, now)
    if op == "not_exists":
        return actual is None
    if op == "exists":
        return actual is not None
    if actual is None:
        return False
    if kind == "string_list":
        if op == "contains":
            return value.casefold() in actual
        return any(item in {v.casefold() for v in value} for item in actual)  # in
    if kind == "string":
        if op == "eq":
            return actual == value.casefold()
        if op == "in":
            return actual in {v.casefold() for v in value}
        if op == "contains":
            return value.casefold() in actual
        return actual.startswith(value.casefold())  # starts_with
    if kind == "boolean":
        return actual == value  # eq
    if op == "within_last":
        return now.timestamp() - duration_seconds(value) <= actual <= now.timestamp()
    if op == "older_than":
        return actual < now.timestamp() - duration_seconds(value)
    if op == "in":
        return actual in [typed_value(v, kind) for v in value]
    if op == "between":
        return typed_value(value[0], kind) <= actual <= typed_value(value[1], kind)
    return _compare(actual, op, typed_value(value, kind))


def _compare(actual: float, op: str, value: Any) -> bool:
    if op == "between":
        return value[0] <= actual <= value[1]
    return {
        "eq": actual == value,
        "ne": actual != value,
        "lt": actual < value,
        "lte": actual <= value,
        "gt": actual > value,
        "gte": actual >= value,
    }[op]


def _property(event: Mapping[str, Any], prop: str) -> Any:
    return event.get("amount") if prop == "amount" else (event.get("properties") or {}).get(prop)


def _same(actual: Any, wanted: Any) -> bool:
    """Equality where the wanted value's JSON type decides which values can match."""
    if isinstance(wanted, bool):
        return isinstance(actual, bool) and actual == wanted
    if isinstance(wanted, str):
        return isinstance(actual, str) and actual.casefold() == wanted.casefold()
    return is_number(actual) and float(actual) == float(wanted)


def _passes(event: Mapping[str, Any], rule: Mapping[str, Any]) -> bool:
    actual, op, value = _property(event, rule["prop"]), rule["op"], rule.get("value")
    if op == "exists":
        return actual is not None
    if op == "not_exists":
        return actual is None
    if op == "eq":
        return _same(actual, value)
    if op == "ne":
        return not _same(actual, value)
    if op == "in":
        return any(_same(actual, v) for v in value)
    if op == "not_in":
        return not any(_same(actual, v) for v in value)
    if op in ("contains", "starts_with"):
        if not isinstance(actual, str):
            return False
        text, needle = actual.casefold(), value.casefold()
        return needle in text if op == "contains" else text.startswith(needle)
    return is_number(actual) and _compare(float(actual), op, value)


def _event(n: dict[str, Any], events: Sequence[Mapping[str, Any]], now: datetime) -> bool:
    start = now.timestamp() - duration_seconds(n["within"]) if n.get("within") else float("-inf")
    window = [e for e in events if e["type"] == n["event"] and parse_rfc3339(e["at"]).timestamp() >= start]
    selected = [e for e in window if all(_passes(e, rule) for rule in n.get("where", ()))]
    agg, op, value = n["agg"], n["op"], n["value"]
    if agg == "count":
        return _compare(float(len(selected)), op, value)
    if agg == "share":
        return bool(window) and _compare(len(selected) / len(window), op, value)
    numbers = [float(_property(e, n["field"])) for e in selected if is_number(_property(e, n["field"]))]
    if agg == "sum":
        return _compare(sum(numbers), op, value)
    if not numbers:
        return False
    result = {"avg": lambda: sum(numbers) / len(numbers), "min": lambda: min(numbers), "max": lambda: max(numbers)}
    return _compare(result[agg](), op, value)
