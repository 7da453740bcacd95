"""Request bodies are checked against the same JSON Schemas the OpenAPI document
publishes, so the contract and the checks cannot drift apart. Failures name the
JSON path of the offending value (``limits.tags_per_segment``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from chalicelib.domain.errors import ValidationFailed


def json_path(parts: Iterable[Any], root: str = "") -> str:
    path = root
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _rule(error: SchemaError) -> Any:
    """The violated keyword's value in the schema (jsonschema types it as possibly unset)."""
    return error.validator_value


def _field_of(error: SchemaError, root: str) -> str:
    path = json_path(error.absolute_path, root)
    if error.validator == "required":
        required: list[str] = list(_rule(error))
        instance: Any = error.instance
        missing = [name for name in required if name not in instance]
        return json_path([missing[0]], path) if missing else path
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema: dict[str, Any] = dict(error.schema) if isinstance(error.schema, dict) else {}
        allowed = set(schema.get("properties", {}))
        extra = sorted(name for name in error.instance if name not in allowed)
        return json_path([extra[0]], path) if extra else path
    return path or "body"


def _message_of(error: SchemaError, field: str) -> str:
    where = field or "body"
    if error.validator == "required":
        return f"{where} is required."
    if error.validator == "additionalProperties":
        return f"{where} is not a known field."
    if error.validator == "type":
        return f"{where} must be of type {error.validator_value}."
    if error.validator == "enum":
        options = ", ".join(map(str, _rule(error)))
        return f"{where} must be one of: {options}."
    return f"{where}: {error.message}"


def validate(instance: Any, schema: dict[str, Any], root: str = "") -> None:
    """Raise ValidationFailed for the most relevant schema violation, if any."""
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), e.path))
    if not errors:
        return
    first = errors[0]
    field = _field_of(first, root)
    problems = [{"field": _field_of(e, root), "message": _message_of(e, _field_of(e, root))} for e in errors[:20]]
    raise ValidationFailed(field, _message_of(first, field), errors=problems)
