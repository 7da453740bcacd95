"""The criteria engine: a checked criteria compiles once into a function of a Population.

``compile_criteria`` turns the tree into nested closures; each closure answers
its node for every row of a batch at once with NumPy array operations, so no
node is re-interpreted per contact. Meaning follows chalicelib/domain/criteria.py
to the letter; the reference interpreter in tests/support/reference.py states the
same meaning one contact at a time, and property tests hold the two together.

Time is an argument (``now``), never read inside, so windows are testable.

``{"segment": id}`` compiles the referenced segment's criteria in place (once per
compilation, its mask computed once per evaluation), so a mixer segment depends
only on the contact and the clock, never on whether another segment's stored
membership is up to date.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from chalicelib.domain.attributes import BUILT_IN
from chalicelib.domain.criteria import CONTACT_FIELDS, NEGATIONS, duration_seconds, typed_value
from chalicelib.domain.population import EventTable, Population


class BrokenReference(Exception):
    """A referenced segment no longer exists (or references form a cycle)."""

    def __init__(self, segment_id: str) -> None:
        super().__init__(segment_id)
        self.segment_id = segment_id


@dataclass
class _Run:
    population: Population
    now: float
    segment_masks: dict[str, np.ndarray] = field(default_factory=dict)


Node = Callable[[_Run], np.ndarray]
SegmentResolver = Callable[[str], "dict[str, Any] | None"]
"""segment id → its (canonical) criteria, or None when it does not exist."""


class CompiledCriteria:
    def __init__(self, root: Node) -> None:
        self._root = root

    def evaluate(self, population: Population, now: datetime) -> np.ndarray:
        """One boolean per row of ``population``."""
        if population.size == 0:
            return np.zeros(0, dtype=bool)
        return self._root(_Run(population, now.timestamp()))

    def members(self, population: Population, now: datetime) -> np.ndarray:
        """The ordinals of the matching rows."""
        return population.ordinals[self.evaluate(population, now)]


def compile_criteria(
    criteria: dict[str, Any],
    attribute_types: Mapping[str, str],
    resolve_segment: SegmentResolver = lambda segment_id: None,
) -> CompiledCriteria:
    return CompiledCriteria(_Compiler(attribute_types, resolve_segment).node(criteria))


class _Compiler:
    def __init__(self, attribute_types: Mapping[str, str], resolve_segment: SegmentResolver) -> None:
        self._types = attribute_types
        self._resolve = resolve_segment
        self._segments: dict[str, Node] = {}
        self._compiling: set[str] = set()

    def node(self, node: dict[str, Any]) -> Node:
        if "all" in node:
            return _fold([self.node(child) for child in node["all"]], np.logical_and)
        if "any" in node:
            return _fold([self.node(child) for child in node["any"]], np.logical_or)
        if "not" in node:
            inner = self.node(node["not"])
            return lambda run: ~inner(run)
        if "tag" in node:
            tag = node["tag"]
            return lambda run: run.population.tag(tag)
        if "group" in node:
            group = node["group"]
            return lambda run: run.population.group(group)
        if "segment" in node:
            return self._segment(node["segment"])
        if "attr" in node:
            return self._attribute(node)
        return _event(node)

    def _segment(self, segment_id: str) -> Node:
        if segment_id not in self._segments:
            if segment_id in self._compiling:
                raise BrokenReference(segment_id)
            criteria = self._resolve(segment_id)
            if criteria is None:
                raise BrokenReference(segment_id)
            self._compiling.add(segment_id)
            self._segments[segment_id] = self.node(criteria)
            self._compiling.discard(segment_id)
        inner = self._segments[segment_id]

        def member_of(run: _Run) -> np.ndarray:
            if segment_id not in run.segment_masks:
                run.segment_masks[segment_id] = inner(run)
            return run.segment_masks[segment_id]

        return member_of

    def _attribute(self, node: dict[str, Any]) -> Node:
        name, op = node["attr"], node["op"]
        kind = CONTACT_FIELDS.get(name) or self._types.get(name) or BUILT_IN.get(name) or "string"
        if op in NEGATIONS:
            positive = self._attribute({**node, "op": NEGATIONS[op]})
            return lambda run: ~positive(run)
        value = node.get("value")
        if kind in ("number", "datetime"):
            return _numeric_attribute(name, kind, op, value)
        if kind == "boolean":
            return _boolean_attribute(name, op, value)
        if kind == "string_list":
            return _list_attribute(name, op, value)
        return _text_attribute(name, op, value)


def _fold(children: list[Node], combine: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Node:
    if len(children) == 1:
        return children[0]

    def fold(run: _Run) -> np.ndarray:
        result = children[0](run)
        for child in children[1:]:
            result = combine(result, child(run))
        return result

    return fold


def _compare(values: np.ndarray, op: str, value: Any) -> np.ndarray:
    """values op value, elementwise; NaN compares false."""
    if op == "eq":
        return values == value
    if op == "ne":
        return values != value
    if op == "lt":
        return values < value
    if op == "lte":
        return values <= value
    if op == "gt":
        return values > value
    if op == "gte":
        return values >= value
    if op == "between":
        return (values >= value[0]) & (values <= value[1])
    if op == "in":
        return np.isin(values, np.asarray(value, dtype=np.float64))
    raise ValueError(op)


def _numeric_attribute(name: str, kind: str, op: str, value: Any) -> Node:
    if op == "exists":
        return lambda run: ~np.isnan(run.population.attribute(name, kind))
    if op in ("within_last", "older_than"):
        span = duration_seconds(value)
        if op == "within_last":
            return lambda run: _compare(run.population.attribute(name, kind), "between", (run.now - span, run.now))
        return lambda run: run.population.attribute(name, kind) < run.now - span
    operand = [typed_value(item, kind) for item in value] if op in ("between", "in") else typed_value(value, kind)
    return lambda run: _compare(run.population.attribute(name, kind), op, operand)


def _boolean_attribute(name: str, op: str, value: Any) -> Node:
    if op == "exists":
        return lambda run: run.population.attribute(name, "boolean") >= 0
    wanted = int(value)
    return lambda run: run.population.attribute(name, "boolean") == wanted


def _text_predicate(op: str, value: Any) -> Callable[[str], bool]:
    if op == "eq" or op == "contains_item":
        wanted = value.casefold()
        return lambda text: text == wanted
    if op == "in":
        choices = {item.casefold() for item in value}
        return lambda text: text in choices
    if op == "contains":
        needle = value.casefold()
        return lambda text: needle in text
    if op == "starts_with":
        prefix = value.casefold()
        return lambda text: text.startswith(prefix)
    raise ValueError(op)


def _text_attribute(name: str, op: str, value: Any) -> Node:
    if op == "exists":
        return lambda run: run.population.attribute(name, "string").present
    predicate = _text_predicate(op, value)
    return lambda run: run.population.attribute(name, "string").matching(predicate)


def _list_attribute(name: str, op: str, value: Any) -> Node:
    if op == "exists":
        return lambda run: run.population.attribute(name, "string_list").present
    predicate = _text_predicate("contains_item" if op == "contains" else op, value)
    return lambda run: run.population.attribute(name, "string_list").any_matching(predicate, run.population.size)


# --- events ---------------------------------------------------------------------------------------------

EventFilter = Callable[[EventTable], np.ndarray]


def _where(node: dict[str, Any]) -> EventFilter:
    prop, op, value = node["prop"], node["op"], node.get("value")
    if op in NEGATIONS:
        positive = _where({**node, "op": NEGATIONS[op]})
        return lambda table: ~positive(table)
    if op == "exists":
        return lambda table: table.present(prop)
    if op in ("lt", "lte", "gt", "gte", "between"):
        return lambda table: _compare(table.number(prop), op, value)
    if op in ("contains", "starts_with"):
        predicate = _text_predicate(op, value)
        return lambda table: table.text(prop).matching(predicate)
    choices: list[Any] = list(value or ()) if op == "in" else [value]
    return _any_value(prop, choices)


def _any_value(prop: str, choices: list[Any]) -> EventFilter:
    """The property equals one of ``choices``, each compared with values of its own JSON type."""
    flags = sorted({int(c) for c in choices if isinstance(c, bool)})
    numbers = [float(c) for c in choices if not isinstance(c, bool | str)]
    texts = {c.casefold() for c in choices if isinstance(c, str)}

    def matches(table: EventTable) -> np.ndarray:
        mask = np.zeros(table.size, dtype=bool)
        if flags:
            mask |= np.isin(table.boolean(prop), flags)
        if numbers:
            mask |= np.isin(table.number(prop), numbers)
        if texts:
            mask |= table.text(prop).matching(texts.__contains__)
        return mask

    return matches


def _event(node: dict[str, Any]) -> Node:
    event_type, agg, op, value = node["event"], node["agg"], node["op"], node["value"]
    span = duration_seconds(node["within"]) if node.get("within") else None
    filters = [_where(item) for item in node.get("where", ())]

    def aggregate(run: _Run) -> np.ndarray:
        rows = run.population.size
        table = run.population.events(event_type)
        window = np.ones(table.size, dtype=bool) if span is None else table.at >= run.now - span
        selected = window.copy()
        for keep in filters:
            selected &= keep(table)
        if agg == "count":
            values = np.bincount(table.owners[selected], minlength=rows).astype(np.float64)
            return _compare(values, op, value)
        if agg == "share":
            totals = np.bincount(table.owners[window], minlength=rows)
            hits = np.bincount(table.owners[selected], minlength=rows)
            shares = hits / np.maximum(totals, 1)
            return (totals > 0) & _compare(shares, op, value)
        amounts = table.number(node["field"])
        usable = selected & ~np.isnan(amounts)
        owners, numbers = table.owners[usable], amounts[usable]
        if agg == "sum":
            return _compare(np.bincount(owners, weights=numbers, minlength=rows), op, value)
        counts = np.bincount(owners, minlength=rows)
        if agg == "avg":
            sums = np.bincount(owners, weights=numbers, minlength=rows)
            values = sums / np.maximum(counts, 1)
        else:
            values = np.full(rows, np.inf if agg == "min" else -np.inf)
            (np.minimum if agg == "min" else np.maximum).at(values, owners, numbers)
        return (counts > 0) & _compare(values, op, value)

    return aggregate
