"""A batch of contacts (and their events) laid out as columns for the criteria engine.

The engine answers a criteria for every contact of a batch at once with array
operations, so the per-contact Python work happens once, when a column is first
asked for, and is shared by every segment evaluated over the same batch. Columns
are built lazily: a batch only pays for the tags, attributes and event types
its criteria mention.

Text values are *factorised*: a column holds one integer code per contact and
the list of distinct (casefolded) texts, so a text predicate runs once per
distinct value instead of once per contact.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from chalicelib.domain.clock import stored_moment
from chalicelib.domain.criteria import contact_value, is_number, typed_value


class ContactLike(Protocol):
    """What a population reads of a contact (domain/contacts.py Contact, or a benchmark's own rows)."""

    @property
    def id(self) -> str: ...

    @property
    def ordinal(self) -> int: ...

    @property
    def group(self) -> str | None: ...

    @property
    def tags(self) -> frozenset[str]: ...

    @property
    def attributes(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TextColumn:
    codes: np.ndarray  # int32, -1 where missing
    categories: list[str]

    def matching(self, predicate: Callable[[str], bool]) -> np.ndarray:
        table = np.fromiter((predicate(text) for text in self.categories), dtype=bool, count=len(self.categories))
        return np.append(table, False)[self.codes]  # code -1 reads the trailing False

    @property
    def present(self) -> np.ndarray:
        return self.codes >= 0


@dataclass(frozen=True)
class ListColumn:
    owners: np.ndarray  # int32 row of each (row, item) pair
    items: TextColumn
    present: np.ndarray  # bool per row: the attribute is set (possibly to [])

    def any_matching(self, predicate: Callable[[str], bool], rows: int) -> np.ndarray:
        mask = np.zeros(rows, dtype=bool)
        mask[self.owners[self.items.matching(predicate)]] = True
        return mask


class _TextFactoriser:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.categories: list[str] = []

    def code(self, text: str | None) -> int:
        if text is None:
            return -1
        code = self.index.get(text)
        if code is None:
            code = self.index[text] = len(self.categories)
            self.categories.append(text)
        return code

    def column(self, texts: Iterable[str | None], count: int) -> TextColumn:
        return TextColumn(np.fromiter((self.code(t) for t in texts), dtype=np.int32, count=count), self.categories)


def _text_column(values: Sequence[Any]) -> TextColumn:
    return _TextFactoriser().column((v.casefold() if isinstance(v, str) else None for v in values), len(values))


def _number_column(values: Sequence[Any]) -> np.ndarray:
    return np.fromiter((float(v) if is_number(v) else np.nan for v in values), dtype=np.float64, count=len(values))


def _boolean_column(values: Sequence[Any]) -> np.ndarray:
    return np.fromiter((int(v) if isinstance(v, bool) else -1 for v in values), dtype=np.int8, count=len(values))


class EventTable:
    """Every event of one type in the batch: who (row), when (epoch seconds), amount, properties."""

    def __init__(self, rows: list[int], events: list[Mapping[str, Any]]) -> None:
        self.size = len(events)
        self.owners = np.asarray(rows, dtype=np.int64)
        self.at = np.fromiter((_epoch(e["at"]) for e in events), dtype=np.float64, count=self.size)
        self._amounts = [e.get("amount") for e in events]
        self._properties = [e.get("properties") or {} for e in events]
        self._cache: dict[tuple[str, str], Any] = {}

    def _values(self, prop: str) -> list[Any]:
        if prop == "amount":
            return self._amounts
        return [properties.get(prop) for properties in self._properties]

    def _cached(self, kind: str, prop: str, build: Callable[[list[Any]], Any]) -> Any:
        key = (kind, prop)
        if key not in self._cache:
            self._cache[key] = build(self._values(prop))
        return self._cache[key]

    def number(self, prop: str) -> np.ndarray:
        return self._cached("number", prop, _number_column)

    def boolean(self, prop: str) -> np.ndarray:
        return self._cached("boolean", prop, _boolean_column)

    def text(self, prop: str) -> TextColumn:
        return self._cached("text", prop, _text_column)

    def present(self, prop: str) -> np.ndarray:
        return self._cached("present", prop, lambda values: np.array([v is not None for v in values], dtype=bool))


def _epoch(text: str) -> float:
    """Epoch seconds of a stored time; NaN (matching no window) for one that cannot be read."""
    moment = stored_moment(text)
    return moment.timestamp() if moment is not None else math.nan


def attribute_column(raw: Sequence[Any], kind: str) -> Any:
    """One typed column over raw values (see :meth:`Population.attribute`)."""
    values = [typed_value(v, kind) for v in raw]
    if kind in ("number", "datetime"):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if kind == "boolean":
        return _boolean_column(values)
    if kind == "string":
        return _TextFactoriser().column(values, len(values))
    owners = [row for row, items in enumerate(values) if items for _ in items]
    factoriser = _TextFactoriser()
    items = factoriser.column([item for items in values if items for item in items], len(owners))
    present = np.array([v is not None for v in values], dtype=bool)
    return ListColumn(np.asarray(owners, dtype=np.int64), items, present)


class Population:
    """Contacts as rows; ``events`` maps a contact id to its events (dicts with type, at, amount, properties)."""

    def __init__(
        self, contacts: Sequence[ContactLike], events: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
    ) -> None:
        self.contacts = list(contacts)
        self.size = len(self.contacts)
        self.ordinals = np.fromiter((c.ordinal for c in self.contacts), dtype=np.int64, count=self.size)
        self._events = events or {}
        self._tag_rows: dict[str, list[int]] | None = None
        self._group_rows: dict[str, list[int]] | None = None
        self._columns: dict[tuple[str, str], Any] = {}
        self._event_tables: dict[str, EventTable] | None = None

    def _rows_mask(self, rows: list[int]) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        mask[rows] = True
        return mask

    def tag(self, tag: str) -> np.ndarray:
        if self._tag_rows is None:
            self._tag_rows = defaultdict(list)
            for row, contact in enumerate(self.contacts):
                for name in contact.tags:
                    self._tag_rows[name].append(row)
        return self._rows_mask(self._tag_rows.get(tag, []))

    def group(self, group_id: str) -> np.ndarray:
        if self._group_rows is None:
            self._group_rows = defaultdict(list)
            for row, contact in enumerate(self.contacts):
                if contact.group:
                    self._group_rows[contact.group].append(row)
        return self._rows_mask(self._group_rows.get(group_id, []))

    def attribute(self, name: str, kind: str) -> Any:
        """number/datetime → float64 (NaN missing); boolean → int8 (-1 missing);
        string → TextColumn; string_list → ListColumn."""
        key = (name, kind)
        if key not in self._columns:
            self._columns[key] = self._build_attribute(name, kind)
        return self._columns[key]

    def _build_attribute(self, name: str, kind: str) -> Any:
        return attribute_column([contact_value(c, name) for c in self.contacts], kind)

    def events(self, event_type: str) -> EventTable:
        if self._event_tables is None:
            rows: dict[str, list[int]] = defaultdict(list)
            grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
            for row, contact in enumerate(self.contacts):
                for event in self._events.get(contact.id, ()):
                    rows[event["type"]].append(row)
                    grouped[event["type"]].append(event)
            self._event_tables = {kind: EventTable(rows[kind], grouped[kind]) for kind in grouped}
        table = self._event_tables.get(event_type)
        if table is None:
            table = self._event_tables[event_type] = EventTable([], [])
        return table
