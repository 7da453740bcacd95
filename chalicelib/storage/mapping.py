"""Items from entities and back, derived from the entity's one declaration (its dataclass fields).

An entity field maps to the item attribute of the same name (or the one ``renamed`` names); how a
value is stored follows from the attribute's class and the field's type: a set attribute holds a
frozenset (an empty one is not stored: DynamoDB refuses empty sets), a number attribute an int when the
field is an int, a text attribute a dict or list as canonical JSON text.
A field without an attribute of its name is a mistake the first mapping reports.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any, Generic, TypeVar, get_type_hints

from pynamodb.attributes import Attribute, NumberAttribute, NumberSetAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.models import Model

Entity = TypeVar("Entity")


def _is_json(hint: Any) -> bool:
    text = str(hint)
    return text.startswith(("dict", "list", "typing.Dict", "typing.List")) or "dict[" in text or "list[" in text


def _is_whole(hint: Any) -> bool:
    """A number field typed ``int`` (or ``int | None``) comes back as an int; a ``float`` one as stored."""
    return "int" in str(hint) and "float" not in str(hint)


def _plan(
    entity_type: type[Any], item_type: type[Model], renamed: dict[str, str]
) -> list[tuple[str, str, Attribute[Any], Any]]:
    """(field, attribute name, attribute, type hint) for every field of the entity."""
    hints = get_type_hints(entity_type)
    attributes = item_type.get_attributes()
    names = {f.name: renamed.get(f.name, f.name) for f in fields(entity_type)}
    missing = [field for field, attribute in names.items() if attribute not in attributes]
    if missing:
        raise TypeError(f"{item_type.__name__} has no attribute for {entity_type.__name__}.{', '.join(missing)}")
    return [(field, name, attributes[name], hints[field]) for field, name in names.items()]


class Mapper(Generic[Entity]):
    """Maps one entity type to one item type, both ways."""

    def __init__(
        self, entity_type: type[Entity], item_type: type[Model], renamed: dict[str, str] | None = None
    ) -> None:
        self.entity_type = entity_type
        self._fields = _plan(entity_type, item_type, renamed or {})

    def attributes(self, entity: Entity) -> dict[str, Any]:
        """The item attributes of ``entity`` (keys and extra attributes are the caller's)."""
        values: dict[str, Any] = {}
        for field, name, attribute, hint in self._fields:
            value = getattr(entity, field)
            if isinstance(attribute, UnicodeSetAttribute | NumberSetAttribute):
                value = set(value) or None
            elif _is_json(hint) and isinstance(attribute, UnicodeAttribute) and value is not None:
                value = json.dumps(value, sort_keys=True)
            values[name] = value
        return values

    def entity(self, item: Model) -> Entity:
        values: dict[str, Any] = {}
        for field, name, attribute, hint in self._fields:
            value = getattr(item, name)
            if isinstance(attribute, UnicodeSetAttribute | NumberSetAttribute):
                value = frozenset(value or ())
            elif isinstance(attribute, NumberAttribute) and value is not None and _is_whole(hint):
                value = int(value)
            elif _is_json(hint) and value is not None:
                value = json.loads(value)
            values[field] = value
        return self.entity_type(**values)
