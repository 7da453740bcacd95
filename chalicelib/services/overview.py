"""The customer overview: how contacts spread over tags, groups and attribute values.

Each counted value comes with the criteria node that selects it, so a client
can build a segment by clicking values and send the combination to
``POST /segments/preview``. Counting reads every shard's image once (its snapshot
patched with what changed since) and counts distinct values, not contacts; values
are grouped the way criteria compare them (text ignores case), so a facet's count
is what the matching criteria would find.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chalicelib.domain.attributes import BUILT_IN
from chalicelib.domain.contacts import SHARDS
from chalicelib.domain.criteria import CONTACT_FIELDS, typed_value
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.shard_image import ShardImage
from chalicelib.domain.values import whole_number
from chalicelib.services.context import TenantContext

MAX_FACETS = 10
TOP_DEFAULT, TOP_MAX = 20, 100
FACETABLE = ("string", "number", "boolean", "string_list")


@dataclass
class _Facet:
    name: str
    kind: str  # "tags", "group" or an attribute type
    attribute: str | None = None
    counts: Counter[Any] = field(default_factory=Counter)
    spelling: dict[Any, str] = field(default_factory=dict)
    missing: int = 0

    def add(self, image: ShardImage) -> None:
        """Count a shard's contacts, one distinct value at a time, in the order contacts first show them
        (so a value's spelling is the first one a contact gave, as a contact-by-contact count would show)."""
        if self.kind == "tags":
            counts = np.bincount(image.tag_codes, minlength=len(image.tag_names))
            self.counts.update({name: int(n) for name, n in zip(image.tag_names, counts, strict=True) if n})
            self.missing += image.size - len(np.unique(image.tag_owners))
            return
        column = image.groups if self.kind == "group" else image.values.get(self.attribute or self.name)
        if column is None:
            self.missing += image.size
            return
        present = column.codes[column.codes >= 0]
        self.missing += image.size - len(present)
        counts = np.bincount(present, minlength=len(column.values))
        codes, first_rows = np.unique(column.codes, return_index=True)
        for code in codes[np.argsort(first_rows)]:
            if code >= 0:
                self._add_value(column.values[code], int(counts[code]))

    def _add_value(self, raw: Any, times: int) -> None:
        if self.kind == "group":
            self.counts[raw] += times
            return
        value = typed_value(raw, self.kind)
        if value is None:
            self.missing += times
        elif self.kind == "string_list":
            for item, original in zip(value, [r for r in raw if isinstance(r, str)], strict=True):
                self.counts[item] += times
                self.spelling.setdefault(item, original)
        else:
            self.counts[value] += times
            if self.kind == "string":
                self.spelling.setdefault(value, raw)

    def view(self, top: int, group_names: dict[str, str]) -> dict[str, Any]:
        values = []
        for value, count in sorted(self.counts.items(), key=lambda pair: (-pair[1], str(pair[0])))[:top]:
            shown = self.spelling.get(value, value)
            if self.kind == "number" and float(shown).is_integer():
                shown = int(shown)
            entry = {"value": shown, "count": count, "criteria": self._criteria(shown)}
            if self.kind == "group":
                entry["name"] = group_names.get(value)
            values.append(entry)
        return {
            "values": values,
            "other": sum(self.counts.values()) - sum(v["count"] for v in values),
            "missing": self.missing,
            "distinct": len(self.counts),
        }

    def _criteria(self, value: Any) -> dict[str, Any]:
        if self.kind == "tags":
            return {"tag": value}
        if self.kind == "group":
            return {"group": value}
        return {"attr": self.attribute, "op": "contains" if self.kind == "string_list" else "eq", "value": value}


def _facets(names: list[str], types: dict[str, str]) -> list[_Facet]:
    facets = []
    for name in names:
        if name in ("tags", "group"):
            facets.append(_Facet(name, name))
            continue
        attribute = name.removeprefix("attributes.")
        kind = CONTACT_FIELDS.get(attribute) or types.get(attribute) or BUILT_IN.get(attribute)
        if not name.startswith("attributes.") or kind is None:
            raise ValidationFailed(
                "facets", f"Unknown facet {name!r}: use tags, group or attributes.<name> of an existing attribute."
            )
        if kind not in FACETABLE:
            raise ValidationFailed("facets", f"{name} is a {kind}; count it with criteria such as within_last instead.")
        facets.append(_Facet(name, kind, attribute))
    return facets


def overview(ctx: TenantContext, query: dict[str, str]) -> dict[str, Any]:
    names = list(dict.fromkeys(part.strip() for part in query.get("facets", "tags,group").split(",") if part.strip()))
    if not 1 <= len(names) <= MAX_FACETS:
        raise ValidationFailed("facets", f"facets lists 1 to {MAX_FACETS} facets, comma-separated.")
    top = whole_number(query.get("top"), "top", 1, TOP_MAX, default=TOP_DEFAULT)
    facets = _facets(names, ctx.attribute_types)
    total = 0
    for image in ctx.shards.images(range(SHARDS), with_events=False):
        total += image.size
        for facet in facets:
            facet.add(image)
    group_names = {}
    if any(f.kind == "group" for f in facets):
        group_names = {g.id: g.name for g in ctx.ports.catalog.all_groups()}
    return {"total": total, "facets": {f.name: f.view(top, group_names) for f in facets}}
