"""The segment criteria language: its grammar, its limits, and what values mean.

A criteria is a tree of JSON nodes (API.md, "Segments")::

    {"all": [node, ...]}   {"any": [node, ...]}   {"not": node}
    {"tag": "vip"}   {"group": "grp_…"}   {"segment": "seg_…"}
    {"attr": "country", "op": "eq", "value": "CA"}
    {"event": "purchase", "within": "7d", "agg": "sum", "field": "amount", "op": "gt", "value": 100,
     "where": [{"prop": "category", "op": "eq", "value": "family"}]}

``check_criteria`` is the only validator: it returns the canonical form (tag
names lower-cased, date-times normalised, event defaults filled in) plus what
the criteria refers to, or raises a 422 naming the JSON path of the bad node.

Meaning, shared by the engine and every test oracle:

- Text comparisons ignore case (``casefold``). ``ne``, ``not_in`` and
  ``not_exists`` are the exact negations of ``eq``, ``in`` and ``exists``, so a
  contact without the attribute *matches* ``ne``; every other operator is false
  on a missing value.
- ``within_last "60d"`` holds when the date-time lies in [now − 60 days, now];
  ``older_than "7d"`` when it lies before now − 7 days. Units: h, d, w.
- An event node aggregates the contact's events of that type with
  ``at ≥ now − within`` (all retained events when ``within`` is absent) that pass
  every ``where`` filter. ``count`` and ``sum`` of nothing are 0; ``avg``,
  ``min`` and ``max`` of nothing, and ``share`` with no events in the window, are
  undefined and match nothing. ``share`` is the fraction of the window's events
  of that type that pass ``where``. A ``where`` value's JSON type picks which
  property values it compares with (``true`` only matches booleans, ``"yes"``
  only text); ``prop: "amount"`` is the event's amount.
- Without ``agg``/``op``/``value`` an event node means "at least one such
  event": ``{"event": "purchase", "within": "60d"}`` is "purchased in the last
  two months".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain.attributes import BUILT_IN
from chalicelib.domain.clock import InvalidMoment, parse_rfc3339, stored_moment, to_rfc3339
from chalicelib.domain.errors import LimitExceeded, UnknownTags, ValidationFailed
from chalicelib.domain.events import EVENT_TYPE_PATTERN, RETENTION_DAYS
from chalicelib.domain.tags import normalise_tag

MAX_DEPTH = 6
MAX_NODES = 100
MAX_LIST_VALUES = 100
MAX_WHERE = 10
MAX_TEXT = 1_000

CONTACT_FIELDS: dict[str, str] = {
    "email": "string",
    "first_name": "string",
    "last_name": "string",
    "external_id": "string",
    "created_at": "datetime",
    "updated_at": "datetime",
}
"""Contact fields a criteria may test like attributes ({"attr": "created_at", "op": "within_last", …})."""

OPS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "string": ("eq", "ne", "in", "not_in", "contains", "starts_with", "exists", "not_exists"),
    "number": ("eq", "ne", "lt", "lte", "gt", "gte", "between", "in", "not_in", "exists", "not_exists"),
    "boolean": ("eq", "ne", "exists", "not_exists"),
    "datetime": ("eq", "ne", "lt", "lte", "gt", "gte", "between", "exists", "not_exists", "within_last", "older_than"),
    "string_list": ("contains", "in", "not_in", "exists", "not_exists"),
}
ATTRIBUTE_OPS = tuple(dict.fromkeys(op for ops in OPS_BY_TYPE.values() for op in ops))
WHERE_OPS = (
    "eq",
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "between",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "exists",
    "not_exists",
)
AGGREGATES = ("count", "sum", "avg", "min", "max", "share")
AGGREGATE_OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "between")
NEGATIONS = {"ne": "eq", "not_in": "in", "not_exists": "exists"}
"""Operators defined as the negation of another (see the module docstring)."""

_DURATION = re.compile(r"^([1-9][0-9]{0,4})([hdw])$")
_UNIT_SECONDS = {"h": 3_600, "d": 86_400, "w": 604_800}
_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)
_PROPERTY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_NODE_KEYS = {
    "all": {"all"},
    "any": {"any"},
    "not": {"not"},
    "tag": {"tag"},
    "group": {"group"},
    "segment": {"segment"},
    "attr": {"attr", "op", "value"},
    "event": {"event", "within", "agg", "field", "op", "value", "where"},
}


def node_kind(node: dict[str, Any]) -> str:
    """What a (checked) criteria node is: its one key among all, any, not, tag, group, segment, attr and
    event — not its first key, since a stored node comes back with its keys in any order."""
    return next(kind for kind in _NODE_KEYS if kind in node)


# --- values, as both the engine and the test oracles read them -------------------------------------------


def duration_seconds(text: str) -> int:
    match = _DURATION.match(text)
    if not match:
        raise ValueError(text)
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def typed_value(raw: Any, kind: str) -> Any:
    """A stored value in comparable form, or None when missing or of another type.

    number → float, datetime → epoch seconds, boolean → bool, string → casefolded
    text, string_list → tuple of casefolded texts.
    """
    if raw is None:
        return None
    if kind == "number":
        return float(raw) if is_number(raw) else None
    if kind == "boolean":
        return raw if isinstance(raw, bool) else None
    if kind == "datetime":
        moment = stored_moment(raw)
        return moment.timestamp() if moment is not None else None
    if kind == "string_list":
        return tuple(item.casefold() for item in raw if isinstance(item, str)) if isinstance(raw, list) else None
    return raw.casefold() if isinstance(raw, str) else None


def contact_value(contact: Any, name: str) -> Any:
    """The raw value an ``attr`` node reads: a contact field or an attribute."""
    if name in CONTACT_FIELDS:
        return getattr(contact, name, None)
    return (contact.attributes or {}).get(name)


# --- validation ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    """What a tenant's criteria may refer to."""

    tags: frozenset[str]
    groups: frozenset[str]
    attributes: Mapping[str, str]
    segments: Mapping[str, frozenset[str]]
    """Every existing segment id → the segment ids its criteria references."""
    tag_limit: int
    invalid_segments: Mapping[str, str] = field(default_factory=dict)
    """Segment id → why it cannot be evaluated; such segments cannot be referenced."""
    segment_id: str | None = None
    """The segment being saved, so a reference back to it is a cycle."""

    def attribute_type(self, name: str) -> str | None:
        return CONTACT_FIELDS.get(name) or self.attributes.get(name) or BUILT_IN.get(name)


@dataclass(frozen=True)
class CheckedCriteria:
    criteria: dict[str, Any]
    tags: frozenset[str]
    groups: frozenset[str]
    segments: frozenset[str]
    time_dependent: bool
    """True when membership can change by time passing alone (windows, within_last, older_than)."""


@dataclass
class _Walk:
    vocabulary: Vocabulary
    nodes: int = 0
    tags: dict[str, str] = field(default_factory=dict)  # tag → path of its first use
    groups: set[str] = field(default_factory=set)
    segments: dict[str, str] = field(default_factory=dict)
    time_dependent: bool = False


def check_criteria(raw: Any, vocabulary: Vocabulary, path: str = "criteria") -> CheckedCriteria:
    walk = _Walk(vocabulary)
    canonical = _node(raw, path, 1, walk)
    limit = vocabulary.tag_limit
    if len(walk.tags) > limit:
        raise LimitExceeded(
            path,
            f"{path} uses {len(walk.tags)} distinct tags; the limit is {limit}.",
            limit=limit,
            count=len(walk.tags),
            tags=sorted(walk.tags),
        )
    unknown = sorted(tag for tag in walk.tags if tag not in vocabulary.tags)
    if unknown:
        raise UnknownTags(
            walk.tags[unknown[0]],
            f"Unknown tag(s): {', '.join(unknown)}. Segments never create tags; create them first.",
            tags=unknown,
        )
    for segment_id, where in walk.segments.items():
        _check_reference(segment_id, where, vocabulary)
    return CheckedCriteria(
        criteria=canonical,
        tags=frozenset(walk.tags),
        groups=frozenset(walk.groups),
        segments=frozenset(walk.segments),
        time_dependent=walk.time_dependent,
    )


def segments_named(criteria: Any) -> set[str]:
    """The segments criteria include (``{"segment": id}`` anywhere in them), without checking them: what a
    stored definition depends on."""
    found: set[str] = set()
    if isinstance(criteria, dict):
        if isinstance(criteria.get("segment"), str):
            found.add(criteria["segment"])
        for value in criteria.values():
            found |= segments_named(value)
    elif isinstance(criteria, list):
        for value in criteria:
            found |= segments_named(value)
    return found


def canonical_text(criteria: dict[str, Any]) -> str:
    return json.dumps(criteria, sort_keys=True, separators=(",", ":"))


def _fail(path: str, message: str, **extra: Any) -> ValidationFailed:
    return ValidationFailed(path, f"{path}: {message}", **extra)


def _node(raw: Any, path: str, depth: int, walk: _Walk) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise LimitExceeded(path, f"{path}: criteria may nest at most {MAX_DEPTH} levels deep.", limit=MAX_DEPTH)
    walk.nodes += 1
    if walk.nodes > MAX_NODES:
        raise LimitExceeded(path, f"{path}: criteria may have at most {MAX_NODES} nodes.", limit=MAX_NODES)
    if not isinstance(raw, dict):
        raise _fail(path, "a criteria node must be a JSON object.")
    kinds = [key for key in _NODE_KEYS if key in raw]
    if len(kinds) != 1:
        raise _fail(
            path,
            "a node has exactly one of all, any, not, tag, group, segment, attr, event.",
            expected=list(_NODE_KEYS),
        )
    kind = kinds[0]
    extra = sorted(set(raw) - _NODE_KEYS[kind])
    if extra:
        raise _fail(f"{path}.{extra[0]}", f"'{extra[0]}' is not part of a {kind} node.")
    if kind in ("all", "any"):
        children = raw[kind]
        if not isinstance(children, list) or not children:
            raise _fail(f"{path}.{kind}", f"{kind} needs a non-empty list of nodes.")
        return {kind: [_node(child, f"{path}.{kind}[{i}]", depth + 1, walk) for i, child in enumerate(children)]}
    if kind == "not":
        return {"not": _node(raw["not"], f"{path}.not", depth + 1, walk)}
    if kind == "tag":
        tag = normalise_tag(raw["tag"], f"{path}.tag")
        walk.tags.setdefault(tag, f"{path}.tag")
        return {"tag": tag}
    if kind == "group":
        group = raw["group"]
        if not isinstance(group, str) or group not in walk.vocabulary.groups:
            raise _fail(f"{path}.group", f"group {group!r} does not exist.")
        walk.groups.add(group)
        return {"group": group}
    if kind == "segment":
        segment = raw["segment"]
        if not isinstance(segment, str):
            raise _fail(f"{path}.segment", "segment must be a segment id.")
        walk.segments.setdefault(segment, f"{path}.segment")
        return {"segment": segment}
    if kind == "attr":
        return _attribute(raw, path, walk)
    return _event(raw, path, walk)


def _check_reference(segment_id: str, path: str, vocabulary: Vocabulary) -> None:
    graph = vocabulary.segments
    if segment_id not in graph:
        raise _fail(path, f"segment {segment_id} does not exist.")
    if segment_id in vocabulary.invalid_segments:
        raise _fail(path, f"segment {segment_id} is invalid ({vocabulary.invalid_segments[segment_id]}).")
    target = vocabulary.segment_id
    if target is None:
        return
    trail = _path_to(segment_id, target, graph)
    if trail is not None:
        raise _fail(
            path,
            "a segment cannot include itself, directly or through other segments.",
            cycle=[target, *trail],
        )


def _path_to(start: str, target: str, graph: Mapping[str, frozenset[str]]) -> list[str] | None:
    """The reference chain from ``start`` to ``target``, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, trail = stack.pop()
        if node == target:
            return trail
        if node in seen:
            continue
        seen.add(node)
        stack += [(nxt, [*trail, nxt]) for nxt in graph.get(node, ())]
    return None


def _attribute(raw: dict[str, Any], path: str, walk: _Walk) -> dict[str, Any]:
    name = raw["attr"]
    if not isinstance(name, str) or not _ATTRIBUTE.match(name):
        raise _fail(f"{path}.attr", "attr must be an attribute name.")
    kind = walk.vocabulary.attribute_type(name)
    if kind is None:
        raise _fail(f"{path}.attr", f"no contact has an attribute named {name!r} yet.")
    op = raw.get("op")
    if op not in ATTRIBUTE_OPS:
        raise _fail(f"{path}.op", f"unknown operator {op!r}.", allowed=list(OPS_BY_TYPE[kind]))
    if op not in OPS_BY_TYPE[kind]:
        raise _fail(f"{path}.op", f"{op} does not apply to {name}, a {kind}.", allowed=list(OPS_BY_TYPE[kind]))
    node: dict[str, Any] = {"attr": name, "op": op}
    value_path = f"{path}.value"
    if op in ("exists", "not_exists"):
        if raw.get("value") is not None:
            raise _fail(value_path, f"{op} takes no value.")
        return node
    if "value" not in raw:
        raise _fail(value_path, f"{op} needs a value.")
    value = raw["value"]
    if op in ("within_last", "older_than"):
        _duration(value, value_path)
        walk.time_dependent = True
        node["value"] = value
    elif op == "between":
        node["value"] = _pair(value, value_path, lambda v, p: _scalar(v, kind, p))
    elif op in ("in", "not_in"):
        item_kind = "string" if kind == "string_list" else kind
        node["value"] = _list(value, value_path, lambda v, p: _scalar(v, item_kind, p))
    else:
        node["value"] = _scalar(value, "string" if kind == "string_list" else kind, value_path)
    return node


def _scalar(value: Any, kind: str, path: str) -> Any:
    if kind == "number":
        if not is_number(value):
            raise _fail(path, "must be a number.", expected="number")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _fail(path, "must be true or false.", expected="boolean")
        return value
    if kind == "datetime":
        try:
            return to_rfc3339(parse_rfc3339(value))
        except InvalidMoment as problem:
            raise _fail(path, f"{problem}.", expected="datetime") from None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise _fail(path, f"must be text of at most {MAX_TEXT} characters.", expected="string")
    return value


def _pair(value: Any, path: str, check: Callable[[Any, str], Any]) -> list[Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(path, "between takes [low, high].")
    low, high = check(value[0], f"{path}[0]"), check(value[1], f"{path}[1]")
    low_key = parse_rfc3339(low).timestamp() if isinstance(low, str) else low
    high_key = parse_rfc3339(high).timestamp() if isinstance(high, str) else high
    if low_key > high_key:
        raise _fail(path, "low must not be above high.")
    return [low, high]


def _list(value: Any, path: str, check: Callable[[Any, str], Any]) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _fail(path, "must be a non-empty list.")
    if len(value) > MAX_LIST_VALUES:
        raise LimitExceeded(path, f"{path}: at most {MAX_LIST_VALUES} values.", limit=MAX_LIST_VALUES)
    return [check(item, f"{path}[{i}]") for i, item in enumerate(value)]


def _duration(value: Any, path: str, max_days: int | None = None) -> int:
    if not isinstance(value, str) or not _DURATION.match(value):
        raise _fail(path, 'a duration is a whole number and a unit h, d or w, such as "60d".', expected="duration")
    seconds = duration_seconds(value)
    if max_days is not None and seconds > max_days * 86_400:
        raise _fail(path, f"events are kept {max_days} days; a longer window would never differ.", limit=max_days)
    return seconds


def _event(raw: dict[str, Any], path: str, walk: _Walk) -> dict[str, Any]:
    event_type = raw["event"]
    if not isinstance(event_type, str) or not _EVENT_TYPE.match(event_type):
        raise _fail(f"{path}.event", "event is an event type such as purchase.")
    node: dict[str, Any] = {"event": event_type}
    if raw.get("within") is not None:
        _duration(raw["within"], f"{path}.within", max_days=RETENTION_DAYS)
        node["within"] = raw["within"]
        walk.time_dependent = True
    agg = raw.get("agg", "count")
    if agg not in AGGREGATES:
        raise _fail(f"{path}.agg", f"unknown aggregate {agg!r}.", allowed=list(AGGREGATES))
    node["agg"] = agg
    if agg in ("sum", "avg", "min", "max"):
        node["field"] = _property_name(raw.get("field"), f"{path}.field")
    elif raw.get("field") is not None:
        raise _fail(f"{path}.field", f"{agg} takes no field.")
    if agg == "count" and "op" not in raw and "value" not in raw:
        node["op"], node["value"] = "gte", 1
    else:
        op = raw.get("op")
        if op not in AGGREGATE_OPS:
            raise _fail(f"{path}.op", f"unknown or missing operator {op!r}.", allowed=list(AGGREGATE_OPS))
        node["op"] = op
        check = _share_value if agg == "share" else (lambda v, p: _scalar(v, "number", p))
        if op == "between":
            node["value"] = _pair(raw.get("value"), f"{path}.value", check)
        else:
            node["value"] = check(raw.get("value"), f"{path}.value")
    where = raw.get("where")
    if where is not None or agg == "share":
        if not isinstance(where, list) or not where:
            raise _fail(
                f"{path}.where",
                "where must be a non-empty list of property filters"
                + (" (share is the fraction of events that pass it)." if agg == "share" else "."),
            )
        if len(where) > MAX_WHERE:
            raise LimitExceeded(f"{path}.where", f"{path}.where: at most {MAX_WHERE} filters.", limit=MAX_WHERE)
        node["where"] = [_where(item, f"{path}.where[{i}]") for i, item in enumerate(where)]
    return node


def _share_value(value: Any, path: str) -> Any:
    """The share as written (an int stays an int in the stored criteria)."""
    if not is_number(value) or not 0 <= value <= 1:
        raise _fail(path, "a share is a fraction from 0 to 1.", expected="number")
    return value


def _property_name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _PROPERTY.match(value):
        raise _fail(path, 'must be "amount" or an event property name.')
    return value


def _where(raw: Any, path: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(path, "a filter is an object {prop, op, value}.")
    extra = sorted(set(raw) - {"prop", "op", "value"})
    if extra:
        raise _fail(f"{path}.{extra[0]}", f"'{extra[0]}' is not part of a filter.")
    prop = _property_name(raw.get("prop"), f"{path}.prop")
    op = raw.get("op")
    if op not in WHERE_OPS:
        raise _fail(f"{path}.op", f"unknown operator {op!r}.", allowed=list(WHERE_OPS))
    node: dict[str, Any] = {"prop": prop, "op": op}
    value_path = f"{path}.value"
    if op in ("exists", "not_exists"):
        if raw.get("value") is not None:
            raise _fail(value_path, f"{op} takes no value.")
        return node
    value = raw.get("value")
    numeric = prop == "amount" or op in ("lt", "lte", "gt", "gte", "between")
    if op == "between":
        node["value"] = _pair(value, value_path, lambda v, p: _scalar(v, "number", p))
    elif op in ("lt", "lte", "gt", "gte"):
        node["value"] = _scalar(value, "number", value_path)
    elif op in ("contains", "starts_with"):
        node["value"] = _scalar(value, "string", value_path)
    elif op in ("in", "not_in"):
        node["value"] = _list(value, value_path, lambda v, p: _property_value(v, p, numeric))
    else:
        node["value"] = _property_value(value, value_path, numeric)
    return node


def _property_value(value: Any, path: str, numeric: bool) -> Any:
    if numeric:
        return _scalar(value, "number", path)
    if isinstance(value, bool) or is_number(value):
        return value
    return _scalar(value, "string", path)
