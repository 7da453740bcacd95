"""Items from entities and back, derived from the entity's one declaration (its dataclass fields).

An entity field maps to the item attribute of the same name (or the one ``renamed`` names); how a
value is stored follows from the attribute's class and the field's type, decided once per field:

- a set attribute holds a frozenset (an empty one is not stored: DynamoDB refuses empty sets);
- a map attribute holds a dict (an empty one is not stored);
- a number attribute holds an int when the field is an int, and any whole number reads back as an int;
- a text attribute holds a dict or list as canonical JSON text, and a bool as ``"true"``/``"false"``;
- a ``spread`` field is a dict of counters kept as number attributes of their own (each one moved by
  atomic ADDs), read back with 0 for those never added to.

An attribute that is absent reads back as the field's default (an absent set or map as an empty one).
A field without an attribute of its name is a mistake the first mapping reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import MISSING, fields
from typing import Any, Generic, TypeVar, cast, get_type_hints

from pynamodb.attributes import (
    Attribute,
    MapAttribute,
    NumberAttribute,
    NumberSetAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.models import Model

Entity = TypeVar("Entity")
Convert = Callable[[Any], Any]


def _is_json(hint: Any) -> bool:
    text = str(hint)
    return text.startswith(("dict", "list", "typing.Dict", "typing.List")) or "dict[" in text or "list[" in text


def _is_whole(hint: Any) -> bool:
    """A number field typed ``int`` (or ``int | None``) comes back as an int; a ``float`` one as stored."""
    return "int" in str(hint) and "float" not in str(hint)


def _is_bool(hint: Any) -> bool:
    return str(hint) in ("bool", "<class 'bool'>")


def _number(value: Any) -> Any:
    """A whole number as an int, whatever the store kept (DynamoDB normalises 5.0 to 5; moto keeps "5.0")."""
    return int(value) if float(value).is_integer() else value


def plain_map(value: Any) -> dict[str, Any]:
    """A map attribute's value as a plain dict (an absent one as an empty dict)."""
    return value.as_dict() if isinstance(value, MapAttribute) else dict(value or {})


def _converters(attribute: Attribute[Any], hint: Any) -> tuple[Convert | None, Convert | None]:
    """(entity value → item value, item value → entity value) for one field; None where it is kept as is.
    Neither is called on None."""
    if isinstance(attribute, UnicodeSetAttribute | NumberSetAttribute):
        return (lambda v: set(v) or None), frozenset
    if isinstance(attribute, MapAttribute):
        return (lambda v: v or None), plain_map
    if isinstance(attribute, NumberAttribute):
        return None, (int if _is_whole(hint) else _number)
    if isinstance(attribute, UnicodeAttribute) and _is_bool(hint):
        return (lambda v: "true" if v else "false"), (lambda v: v == "true")
    if isinstance(attribute, UnicodeAttribute) and _is_json(hint):
        return (lambda v: json.dumps(v, sort_keys=True)), json.loads
    return None, None


class _Field:
    __slots__ = ("attribute", "default", "name", "to_entity", "to_item")

    def __init__(self, name: str, attribute: str, hint: Any, item_attribute: Attribute[Any], default: Any) -> None:
        self.name, self.attribute = name, attribute
        self.default = default or _empty_of(item_attribute)
        self.to_item, self.to_entity = _converters(item_attribute, hint)


def _empty_of(attribute: Attribute[Any]) -> Callable[[], Any] | None:
    """An absent set or map is an empty one (DynamoDB stores neither empty)."""
    if isinstance(attribute, UnicodeSetAttribute | NumberSetAttribute):
        return frozenset
    return dict if isinstance(attribute, MapAttribute) else None


def _default_of(field: Any) -> Any:
    """A field's default as a thunk (a fresh dict for a ``default_factory``), or None when it has none."""
    if field.default is not MISSING:
        value = field.default
        return lambda: value
    if field.default_factory is not MISSING:
        return field.default_factory
    return None


class Mapper(Generic[Entity]):
    """Maps one entity type to one item type, both ways."""

    def __init__(
        self,
        entity_type: type[Entity],
        item_type: type[Model],
        renamed: dict[str, str] | None = None,
        spread: dict[str, Iterable[str]] | None = None,
    ) -> None:
        self.entity_type = entity_type
        self._spread = {name: tuple(counters) for name, counters in (spread or {}).items()}
        hints = get_type_hints(entity_type)
        attributes = item_type.get_attributes()
        self._fields: list[_Field] = []
        for field in fields(cast(Any, entity_type)):
            if field.name in self._spread:
                missing = [name for name in self._spread[field.name] if name not in attributes]
            else:
                name = (renamed or {}).get(field.name, field.name)
                missing = [] if name in attributes else [field.name]
                if not missing:
                    self._fields.append(
                        _Field(field.name, name, hints[field.name], attributes[name], _default_of(field))
                    )
            if missing:
                raise TypeError(
                    f"{item_type.__name__} has no attribute for {entity_type.__name__}.{', '.join(missing)}"
                )

    def attributes(self, entity: Entity, only: Iterable[str] | None = None) -> dict[str, Any]:
        """The item attributes of ``entity`` (of its fields ``only``, when given; keys and extra attributes are
        the caller's)."""
        chosen = None if only is None else set(only)
        values: dict[str, Any] = {}
        for field in self._fields:
            if chosen is not None and field.name not in chosen:
                continue
            value = getattr(entity, field.name)
            values[field.attribute] = field.to_item(value) if field.to_item and value is not None else value
        for name, counters in self._spread.items():
            if chosen is None or name in chosen:
                values.update({counter: getattr(entity, name).get(counter, 0) for counter in counters})
        return values

    def entity(self, item: Model) -> Entity:
        values: dict[str, Any] = {}
        for field in self._fields:
            value = getattr(item, field.attribute)
            if value is None:
                if field.default is not None:
                    values[field.name] = field.default()
                    continue
            elif field.to_entity is not None:
                value = field.to_entity(value)
            values[field.name] = value
        for name, counters in self._spread.items():
            values[name] = {counter: int(getattr(item, counter) or 0) for counter in counters}
        return self.entity_type(**values)
