"""A shard's contacts and events as columns: what a snapshot stores and what the engine evaluates.

A :class:`ShardImage` holds exactly what :class:`~chalicelib.domain.population.Population` reads of
a contact — its ordinal, tags, group, every value an ``attr`` criterion can name, and its events —
as arrays, so it can be stored compactly, decoded fast and evaluated without a Python object per
contact. Every stored value is *factorised*: a column is one int32 code per row (-1: missing) and
the list of its distinct raw values. A typed column (number, text, …) is then built once per
distinct value, by the same builders a Population uses, and gathered by code — the rules that
type a value exist once, so an image answers every criteria exactly as the contacts it was built
from do.

Images are patched, not rebuilt: :meth:`ShardImage.without` drops rows (contacts changed since the
image was made) and :meth:`ShardImage.concat` appends fresh ones; rows stay in ordinal order.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from chalicelib.domain.clock import stored_moment
from chalicelib.domain.criteria import CONTACT_FIELDS
from chalicelib.domain.population import (
    ContactLike,
    EventTable,
    ListColumn,
    Population,
    TextColumn,
    attribute_column,
)

Array = npt.NDArray[Any]

FORMAT = "segments-shard-image/1"


def _plain(value: Any) -> Any:
    """A value as JSON can hold it (numbers from DynamoDB arrive as Decimal)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _key(value: Any) -> Any:
    """A hashable key telling distinct values apart (True and 1 are different values here)."""
    if isinstance(value, str | bool | int | float) or value is None:
        return (type(value), value)
    return ("json", json.dumps(value, sort_keys=True))


class _Factoriser:
    def __init__(self) -> None:
        self.index: dict[Any, int] = {}
        self.values: list[Any] = []

    def code(self, value: Any) -> int:
        if value is None:
            return -1
        key = _key(value)
        code = self.index.get(key)
        if code is None:
            code = self.index[key] = len(self.values)
            self.values.append(_plain(value))
        return code


@dataclass(frozen=True)
class ValueColumn:
    """Raw values of one name over the rows, factorised."""

    codes: Array  # int32 per row; -1 where the value is missing
    values: list[Any]

    @classmethod
    def of(cls, raw: Iterable[Any], count: int) -> ValueColumn:
        factoriser = _Factoriser()
        codes = np.fromiter((factoriser.code(v) for v in raw), dtype=np.int32, count=count)
        return cls(codes, factoriser.values)

    @classmethod
    def missing(cls, count: int) -> ValueColumn:
        return cls(np.full(count, -1, dtype=np.int32), [])

    def take(self, rows: Array) -> ValueColumn:
        return ValueColumn(self.codes[rows], self.values)

    @staticmethod
    def concat(columns: Sequence[ValueColumn]) -> ValueColumn:
        factoriser = _Factoriser()
        parts = []
        for column in columns:
            remap = np.array([factoriser.code(v) for v in column.values] + [-1], dtype=np.int32)
            parts.append(remap[column.codes])
        return ValueColumn(np.concatenate(parts) if parts else np.empty(0, np.int32), factoriser.values)

    def gather(self, per_value: Any) -> Any:
        """A typed column built over ``values + [None]`` (one entry per distinct value, the last for a missing
        one), spread over the rows: code -1 reads the trailing entry."""
        if isinstance(per_value, np.ndarray):
            return per_value[self.codes]
        if isinstance(per_value, TextColumn):
            return TextColumn(per_value.codes[self.codes], per_value.categories)
        assert isinstance(per_value, ListColumn)
        counts = np.bincount(per_value.owners, minlength=len(self.values) + 1).astype(np.int64)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))  # a value's items are contiguous (built in order)
        row_counts = counts[self.codes]
        owners = np.repeat(np.arange(len(self.codes), dtype=np.int64), row_counts)
        first_item = np.repeat(starts[self.codes] - np.concatenate(([0], np.cumsum(row_counts)[:-1])), row_counts)
        items = per_value.items.codes[first_item + np.arange(len(owners), dtype=np.int64)]
        return ListColumn(owners, TextColumn(items, per_value.items.categories), per_value.present[self.codes])


def _epoch(text: Any) -> float:
    moment = stored_moment(text) if isinstance(text, str) else None
    return moment.timestamp() if moment is not None else math.nan


@dataclass(frozen=True)
class EventColumns:
    """Every event of one type: its row, its time (epoch seconds, NaN when unreadable) and its values by name
    (``amount`` and each property)."""

    owners: Array  # int32 row of each event
    at: Array  # float64
    values: dict[str, ValueColumn]

    def take(self, keep: Array, new_row: Array) -> EventColumns:
        """The events whose ``keep`` is set, their owners renumbered by ``new_row``."""
        return EventColumns(
            new_row[self.owners[keep]].astype(np.int32),
            self.at[keep],
            {name: column.take(keep) for name, column in self.values.items()},
        )


def _event_columns(rows: list[int], events: list[Mapping[str, Any]]) -> EventColumns:
    names = sorted({name for e in events for name in (e.get("properties") or {}) if name != "amount"})
    values = {"amount": ValueColumn.of((e.get("amount") for e in events), len(events))}
    for name in names:
        values[name] = ValueColumn.of(((e.get("properties") or {}).get(name) for e in events), len(events))
    moments: dict[Any, float] = {}  # event times repeat (a day's purchases): parse each text once
    at = np.fromiter(
        (moments[e["at"]] if e["at"] in moments else moments.setdefault(e["at"], _epoch(e["at"])) for e in events),
        dtype=np.float64,
        count=len(events),
    )
    return EventColumns(np.asarray(rows, dtype=np.int32), at, values)


def _concat_events(parts: Sequence[tuple[EventColumns, int]]) -> EventColumns:
    """Event columns of consecutive images; each part's owners shifted by its image's first row."""
    names = sorted({name for columns, _ in parts for name in columns.values})
    return EventColumns(
        np.concatenate([columns.owners + offset for columns, offset in parts]).astype(np.int32),
        np.concatenate([columns.at for columns, _ in parts]),
        {
            name: ValueColumn.concat(
                [columns.values.get(name) or ValueColumn.missing(len(columns.at)) for columns, _ in parts]
            )
            for name in names
        },
    )


@dataclass(frozen=True)
class ShardImage:
    ordinals: Array  # int64, ascending
    values: dict[str, ValueColumn]  # what contact_value reads: contact fields and attributes by name
    groups: ValueColumn
    tag_owners: Array  # int32 row of each (row, tag) pair
    tag_codes: Array  # int32 index into tag_names
    tag_names: list[str]
    events: dict[str, EventColumns] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.ordinals)

    @classmethod
    def build(
        cls, contacts: Sequence[ContactLike], events: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
    ) -> ShardImage:
        """The image of ``contacts`` (any order) and their ``events`` by contact id."""
        contacts = sorted(contacts, key=lambda c: c.ordinal)
        count = len(contacts)
        names = sorted({name for c in contacts for name in (c.attributes or {}) if name not in CONTACT_FIELDS})
        values = {name: ValueColumn.of((getattr(c, name, None) for c in contacts), count) for name in CONTACT_FIELDS}
        for name in names:
            values[name] = ValueColumn.of(((c.attributes or {}).get(name) for c in contacts), count)
        tags = _Factoriser()
        pairs = [(row, tags.code(tag)) for row, c in enumerate(contacts) for tag in sorted(c.tags)]
        by_type: dict[str, tuple[list[int], list[Mapping[str, Any]]]] = {}
        for row, contact in enumerate(contacts):
            for event in (events or {}).get(contact.id, ()):
                rows, own = by_type.setdefault(event["type"], ([], []))
                rows.append(row)
                own.append(event)
        return cls(
            ordinals=np.fromiter((c.ordinal for c in contacts), dtype=np.int64, count=count),
            values=values,
            groups=ValueColumn.of((c.group for c in contacts), count),
            tag_owners=np.array([row for row, _ in pairs], dtype=np.int32),
            tag_codes=np.array([code for _, code in pairs], dtype=np.int32),
            tag_names=tags.values,
            events={kind: _event_columns(*by_type[kind]) for kind in sorted(by_type)},
        )

    @classmethod
    def empty(cls) -> ShardImage:
        return cls.build([])

    def take(self, rows: Array) -> ShardImage:
        """The image of the given rows (ascending), in that order."""
        new_row = np.full(self.size + 1, -1, dtype=np.int64)
        new_row[rows] = np.arange(len(rows))
        kept_tags = new_row[self.tag_owners] >= 0
        return ShardImage(
            ordinals=self.ordinals[rows],
            values={name: column.take(rows) for name, column in self.values.items()},
            groups=self.groups.take(rows),
            tag_owners=new_row[self.tag_owners[kept_tags]].astype(np.int32),
            tag_codes=self.tag_codes[kept_tags],
            tag_names=self.tag_names,
            events={kind: columns.take(new_row[columns.owners] >= 0, new_row) for kind, columns in self.events.items()},
        )

    def without(self, ordinals: Iterable[int]) -> ShardImage:
        drop = np.fromiter(ordinals, dtype=np.int64)
        return self.take(np.flatnonzero(~np.isin(self.ordinals, drop)))

    @staticmethod
    def concat(images: Sequence[ShardImage]) -> ShardImage:
        """The images' rows together, in ordinal order (their ordinals must not overlap)."""
        offsets = np.cumsum([0] + [image.size for image in images])
        names = sorted({name for image in images for name in image.values})
        tags = _Factoriser()
        tag_codes = []
        for image in images:
            remap = np.array([tags.code(t) for t in image.tag_names] + [-1], dtype=np.int32)
            tag_codes.append(remap[image.tag_codes])
        kinds = sorted({kind for image in images for kind in image.events})
        joined = ShardImage(
            ordinals=np.concatenate([image.ordinals for image in images]),
            values={
                name: ValueColumn.concat(
                    [image.values.get(name) or ValueColumn.missing(image.size) for image in images]
                )
                for name in names
            },
            groups=ValueColumn.concat([image.groups for image in images]),
            tag_owners=np.concatenate([image.tag_owners + offsets[i] for i, image in enumerate(images)]).astype(
                np.int32
            ),
            tag_codes=np.concatenate(tag_codes).astype(np.int32),
            tag_names=tags.values,
            events={
                kind: _concat_events(
                    [(image.events[kind], offsets[i]) for i, image in enumerate(images) if kind in image.events]
                )
                for kind in kinds
            },
        )
        order = np.argsort(joined.ordinals, kind="stable")
        return joined if np.array_equal(order, np.arange(joined.size)) else joined.take(order)

    def patched(self, changed: Iterable[int], fresh: ShardImage) -> ShardImage:
        """This image with the rows of ``changed`` ordinals replaced by ``fresh`` (a contact of ``changed``
        missing from ``fresh`` is gone)."""
        return ShardImage.concat([self.without(changed), fresh])

    # --- bytes ------------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A NumPy ``.npz`` (zip, deflated): the arrays plus one JSON header of names and distinct values, no
        pickle anywhere. Deflate makes a shard ~6× smaller for ~50% more decode time: fetching from S3, not
        decoding, is what a preview waits for."""
        arrays: dict[str, Array] = {"ordinals": self.ordinals, "tag_owners": self.tag_owners}
        arrays["tag_codes"] = self.tag_codes

        def put(column: ValueColumn) -> dict[str, Any]:
            slot = f"a{len(arrays)}"
            arrays[slot] = column.codes
            return {"codes": slot, "values": column.values}

        header: dict[str, Any] = {
            "format": FORMAT,
            "tags": self.tag_names,
            "groups": put(self.groups),
            "values": {name: put(column) for name, column in self.values.items()},
            "events": {},
        }
        for kind, columns in self.events.items():
            owners, at = f"a{len(arrays)}", f"a{len(arrays) + 1}"
            arrays[owners], arrays[at] = columns.owners, columns.at
            header["events"][kind] = {
                "owners": owners,
                "at": at,
                "values": {name: put(column) for name, column in columns.values.items()},
            }
        arrays["header"] = np.frombuffer(json.dumps(header, separators=(",", ":")).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types the keywords badly
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ShardImage:
        """Raises ValueError for anything but an image this code wrote (a damaged or foreign file)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
            header = json.loads(arrays.pop("header").tobytes())
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as damaged:
            raise ValueError(f"not a shard image: {damaged}") from damaged
        if header.get("format") != FORMAT:
            raise ValueError(f"not a shard image: {header.get('format')!r}")

        def column(spec: Mapping[str, Any]) -> ValueColumn:
            return ValueColumn(arrays[spec["codes"]], spec["values"])

        return cls(
            ordinals=arrays["ordinals"],
            values={name: column(spec) for name, spec in header["values"].items()},
            groups=column(header["groups"]),
            tag_owners=arrays["tag_owners"],
            tag_codes=arrays["tag_codes"],
            tag_names=header["tags"],
            events={
                kind: EventColumns(
                    arrays[spec["owners"]],
                    arrays[spec["at"]],
                    {name: column(value) for name, value in spec["values"].items()},
                )
                for kind, spec in header["events"].items()
            },
        )


class _ImageEvents(EventTable):
    """An image's events of one type, typed like EventTable's but built per distinct value."""

    def __init__(self, columns: EventColumns) -> None:
        self.size = len(columns.at)
        self.owners = columns.owners.astype(np.int64)
        self.at = columns.at
        self._columns = columns.values
        self._cache = {}

    def _cached(self, kind: str, prop: str, build: Callable[[list[Any]], Any]) -> Any:
        key = (kind, prop)
        if key not in self._cache:
            column = self._columns.get(prop) or ValueColumn.missing(self.size)
            self._cache[key] = column.gather(build([*column.values, None]))
        return self._cache[key]


class ImagePopulation(Population):
    """A Population read from a ShardImage instead of contact objects (the engine cannot tell them apart)."""

    def __init__(self, image: ShardImage) -> None:
        super().__init__([])
        self.image = image
        self.size = image.size
        self.ordinals = image.ordinals
        self._image_events: dict[str, EventTable] = {}

    def tag(self, tag: str) -> Array:
        mask = np.zeros(self.size, dtype=bool)
        if tag in self.image.tag_names:
            mask[self.image.tag_owners[self.image.tag_codes == self.image.tag_names.index(tag)]] = True
        return mask

    def group(self, group_id: str) -> Array:
        groups = self.image.groups
        if group_id not in groups.values:
            return np.zeros(self.size, dtype=bool)
        return np.asarray(groups.codes == groups.values.index(group_id), dtype=bool)

    def _build_attribute(self, name: str, kind: str) -> Any:
        column = self.image.values.get(name) or ValueColumn.missing(self.size)
        return column.gather(attribute_column([*column.values, None], kind))

    def events(self, event_type: str) -> EventTable:
        if event_type not in self._image_events:
            columns = self.image.events.get(event_type)
            self._image_events[event_type] = _ImageEvents(columns) if columns is not None else EventTable([], [])
        return self._image_events[event_type]
