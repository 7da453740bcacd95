"""Parsing contact imports: CSV (header row) or JSON Lines, up to MAX_ROWS rows.

Every row keeps the line number it starts on, so problems are reported per line
while the good rows still land. CSV columns: ``external_id``, ``email``,
``first_name``, ``last_name``, ``group`` (id or name), ``tags`` (``;``-separated)
and ``attributes.<name>``. An empty cell leaves that field as it is. A row whose
quote never closes is reported on its own line and parsing resumes on the next
line, instead of swallowing the rest of the file.
"""

from __future__ import annotations

import csv
import json
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain.attributes import ATTRIBUTE_NAME_PATTERN
from chalicelib.domain.errors import LimitExceeded, ValidationFailed
from chalicelib.domain.values import loads_json, unstorable_number

MAX_ROWS = 10_000
CSV_FIELDS = ("external_id", "email", "first_name", "last_name", "group", "tags")
_QUOTE_LOOKAHEAD = 50  # physical lines a quoted cell may span
MAX_HEADER_NAME = 100
_ATTRIBUTE_NAME = re.compile(ATTRIBUTE_NAME_PATTERN)


@dataclass
class ParsedImport:
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    csv_text_attributes: bool = False  # CSV cells are text: attributes are typed later, with the catalog


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
"""A physical line with its terminator: only CR LF, LF and CR end one (U+2028, U+0085, form feed… are data)."""


def _too_many() -> LimitExceeded:
    return LimitExceeded("body", f"An import holds at most {MAX_ROWS} rows; this one has more.", limit=MAX_ROWS)


def _physical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line with its terminator), lazily: a huge body is not split before the row limit is met."""
    for number, match in enumerate(_LINE.finditer(text), start=1):
        yield number, match.group()


def _unterminated(line: str) -> str:
    return line.rstrip("\r\n")


def _records(lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str | None]]:
    """Group physical lines into CSV records, keeping their line ends exactly (a quoted cell may hold them).

    A record whose quote is still open after _QUOTE_LOOKAHEAD lines comes out as (line, None), and reading
    resumes on the line after its first."""
    pushed_back: deque[tuple[int, str]] = deque()

    def take() -> tuple[int, str] | None:
        return pushed_back.popleft() if pushed_back else next(lines, None)

    while (first := take()) is not None:
        number, line = first
        if not line.strip():
            continue
        parts, following = [line], list[tuple[int, str]]()
        quotes = line.count('"')
        while quotes % 2 and len(following) < _QUOTE_LOOKAHEAD and (more := take()) is not None:
            following.append(more)
            parts.append(more[1])
            quotes += more[1].count('"')
        if quotes % 2:
            pushed_back.extendleft(reversed(following))
            yield number, None
        else:
            yield number, _unterminated("".join(parts))


def _header(line: str) -> list[str]:
    try:
        columns = [name.strip() for name in next(csv.reader([line]))]
    except csv.Error:
        cells = line.split(",")
        position = next((i for i, cell in enumerate(cells) if len(cell) > MAX_HEADER_NAME), 0)
        raise ValidationFailed("header", "the header row is not valid CSV.", column=position + 1) from None
    seen = set()
    for position, name in enumerate(columns):
        if len(name) > MAX_HEADER_NAME:
            raise ValidationFailed(
                "header", f"column {position + 1} is longer than {MAX_HEADER_NAME} characters.", column=position + 1
            )
        if name in seen:
            raise ValidationFailed("header", f"column {name!r} appears twice.", column=position + 1)
        seen.add(name)
        attribute = name[len("attributes.") :] if name.startswith("attributes.") else None
        if name not in CSV_FIELDS and not (attribute and _ATTRIBUTE_NAME.fullmatch(attribute)):
            raise ValidationFailed(
                "header",
                f"column {name!r} is not one of {', '.join(CSV_FIELDS)} or attributes.<name> "
                "(a-z, 0-9 and '_', starting with a letter).",
                column=position + 1,
            )
    if not ({"email", "external_id"} & seen):
        raise ValidationFailed("header", "the header needs an email or an external_id column.")
    return columns


def parse_csv(text: str) -> ParsedImport:
    lines = _physical_lines(text)
    header = next(((n, line) for n, line in lines if line.strip()), None)
    if header is None:
        raise ValidationFailed("body", "The import is empty.")
    columns = _header(_unterminated(header[1]))
    parsed = ParsedImport(csv_text_attributes=True)
    for line_number, record in _records(lines):
        if len(parsed.rows) + len(parsed.errors) >= MAX_ROWS:
            raise _too_many()
        if record is None:
            parsed.errors.append({"line": line_number, "field": None, "message": "a quoted cell is never closed"})
            continue
        try:
            (cells,) = list(csv.reader([record], strict=True))
        except (csv.Error, ValueError) as problem:
            parsed.errors.append({"line": line_number, "field": None, "message": f"malformed CSV: {problem}"})
            continue
        if len(cells) != len(columns):
            parsed.errors.append(
                {
                    "line": line_number,
                    "field": None,
                    "message": f"{len(cells)} cells where the header has {len(columns)}",
                }
            )
            continue
        row: dict[str, Any] = {}
        for name, cell in zip(columns, cells, strict=True):
            if cell == "":
                continue
            if name == "tags":
                row["tags"] = [tag for tag in (part.strip() for part in cell.split(";")) if tag]
            elif name.startswith("attributes."):
                row.setdefault("attributes", {})[name[len("attributes.") :]] = cell
            else:
                row[name] = cell.strip()
        parsed.rows.append((line_number, row))
    parsed.errors.sort(key=lambda error: error["line"])
    return parsed


def parse_jsonl(text: str) -> ParsedImport:
    """JSON Lines: records end at LF (a CR before it is JSON whitespace); U+2028 and the like are data."""
    parsed = ParsedImport()
    for index, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        if len(parsed.rows) + len(parsed.errors) >= MAX_ROWS:
            raise _too_many()
        try:
            row = loads_json(line)
        except json.JSONDecodeError as problem:
            parsed.errors.append({"line": index + 1, "field": None, "message": f"not valid JSON: {problem.msg}"})
            continue
        except (ValueError, RecursionError):
            parsed.errors.append({"line": index + 1, "field": None, "message": "not valid JSON"})
            continue
        if not isinstance(row, dict):
            parsed.errors.append({"line": index + 1, "field": None, "message": "each line must be a JSON object"})
            continue
        unstorable = unstorable_number(row)
        if unstorable:
            parsed.errors.append(
                {"line": index + 1, "field": unstorable[0], "message": f"{unstorable[0]} {unstorable[1]}"}
            )
            continue
        parsed.rows.append((index + 1, row))
    if not parsed.rows and not parsed.errors:
        raise ValidationFailed("body", "The import is empty.")
    return parsed


def parse_import(body: bytes, content_type: str) -> ParsedImport:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed("body", "The import must be UTF-8 text.") from None
    if content_type.split(";")[0].strip().lower() == "text/csv":
        return parse_csv(text)
    return parse_jsonl(text)
