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
import io
import json
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain.errors import LimitExceeded, ValidationFailed

MAX_ROWS = 10_000
CSV_FIELDS = ("external_id", "email", "first_name", "last_name", "group", "tags")
_QUOTE_LOOKAHEAD = 50  # physical lines a quoted cell may span


@dataclass
class ParsedImport:
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    csv_text_attributes: bool = False  # CSV cells are text: attributes are typed later, with the catalog


def _count_rows(parsed: ParsedImport) -> None:
    total = len(parsed.rows) + len(parsed.errors)
    if total > MAX_ROWS:
        raise LimitExceeded("body", f"An import holds at most {MAX_ROWS} rows; this one has {total}.", limit=MAX_ROWS)


def _records(lines: list[str], start: int) -> tuple[list[tuple[int, str]], list[dict[str, Any]]]:
    """Group physical lines into CSV records; unterminated quotes become errors."""
    records, errors = [], []
    index = start
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        text, end = line, index
        while text.count('"') % 2 and end + 1 < len(lines) and end - index < _QUOTE_LOOKAHEAD:
            end += 1
            text += "\n" + lines[end]
        if text.count('"') % 2:
            errors.append({"line": index + 1, "field": None, "message": "a quoted cell is never closed"})
            index += 1
            continue
        records.append((index + 1, text))
        index = end + 1
    return records, errors


def _header(line: str) -> list[str]:
    columns = [name.strip() for name in next(csv.reader([line]))]
    seen = set()
    for position, name in enumerate(columns):
        if name in seen:
            raise ValidationFailed("header", f"column {name!r} appears twice.", column=position + 1)
        seen.add(name)
        if name not in CSV_FIELDS and not (name.startswith("attributes.") and len(name) > len("attributes.")):
            raise ValidationFailed(
                "header",
                f"column {name!r} is not one of {', '.join(CSV_FIELDS)} or attributes.<name>.",
                column=position + 1,
            )
    if not ({"email", "external_id"} & seen):
        raise ValidationFailed("header", "the header needs an email or an external_id column.")
    return columns


def parse_csv(text: str) -> ParsedImport:
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise ValidationFailed("body", "The import is empty.")
    columns = _header(lines[first])
    parsed = ParsedImport(csv_text_attributes=True)
    records, parsed.errors = _records(lines, first + 1)
    for line_number, record in records:
        try:
            (cells,) = list(csv.reader(io.StringIO(record), strict=True))
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
    _count_rows(parsed)
    return parsed


def parse_jsonl(text: str) -> ParsedImport:
    parsed = ParsedImport()
    for index, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as problem:
            parsed.errors.append({"line": index + 1, "field": None, "message": f"not valid JSON: {problem}"})
            continue
        if not isinstance(row, dict):
            parsed.errors.append({"line": index + 1, "field": None, "message": "each line must be a JSON object"})
            continue
        parsed.rows.append((index + 1, row))
        if len(parsed.rows) > MAX_ROWS:
            break
    if not parsed.rows and not parsed.errors:
        raise ValidationFailed("body", "The import is empty.")
    _count_rows(parsed)
    return parsed


def parse_import(body: bytes, content_type: str) -> ParsedImport:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed("body", "The import must be UTF-8 text.") from None
    if content_type.split(";")[0].strip().lower() == "text/csv":
        return parse_csv(text)
    return parse_jsonl(text)
