import json

import pytest

from chalicelib.domain.errors import LimitExceeded, ValidationFailed
from chalicelib.domain.imports import MAX_ROWS, parse_csv, parse_import, parse_jsonl

HEADER = "external_id,email,first_name,tags,attributes.city\n"


def test_csv_rows_map_to_contact_fields_with_line_numbers():
    parsed = parse_csv(HEADER + 'p-1,ana@example.com,Ana,vip;family,Toronto\np-2,bo@example.com,,,"Montréal, QC"\n')
    assert parsed.errors == []
    assert parsed.rows == [
        (
            2,
            {
                "external_id": "p-1",
                "email": "ana@example.com",
                "first_name": "Ana",
                "tags": ["vip", "family"],
                "attributes": {"city": "Toronto"},
            },
        ),
        (3, {"external_id": "p-2", "email": "bo@example.com", "attributes": {"city": "Montréal, QC"}}),
    ]


def test_broken_quote_on_line_7_is_reported_alone():
    lines = [f"p-{i},c{i}@example.com,Name{i},,City{i}" for i in range(2, 12)]
    lines[5] = 'p-7,c7@example.com,"Broken,,City7'  # line 7 of the file
    parsed = parse_csv(HEADER + "\n".join(lines) + "\n")
    assert [e["line"] for e in parsed.errors] == [7]
    assert [line for line, _ in parsed.rows] == [2, 3, 4, 5, 6, 8, 9, 10, 11]


def test_quoted_cells_may_span_lines():
    parsed = parse_csv(HEADER + 'p-1,a@example.com,"Ana\nMaria",,X\np-2,b@example.com,Bo,,Y\n')
    assert parsed.errors == []
    assert parsed.rows[0] == (
        2,
        {"external_id": "p-1", "email": "a@example.com", "first_name": "Ana\nMaria", "attributes": {"city": "X"}},
    )
    assert parsed.rows[1][0] == 4


def test_wrong_cell_count_is_a_row_error():
    parsed = parse_csv(HEADER + "p-1,a@example.com\np-2,b@example.com,Bo,,Y\n")
    assert parsed.errors == [{"line": 2, "field": None, "message": "2 cells where the header has 5"}]
    assert len(parsed.rows) == 1


@pytest.mark.parametrize("header", ["email,email\n", "email,shoe_size\n", "first_name\n", "email,attributes.\n"])
def test_bad_headers_refuse_the_whole_file(header):
    with pytest.raises(ValidationFailed) as refused:
        parse_csv(header + "a@example.com,x\n")
    assert refused.value.field == "header"


def test_row_limit():
    ok = "email\n" + "".join(f"c{i}@example.com\n" for i in range(MAX_ROWS))
    assert len(parse_csv(ok).rows) == MAX_ROWS
    with pytest.raises(LimitExceeded) as refused:
        parse_csv(ok + "one-more@example.com\n")
    assert refused.value.field == "body"
    too_many = "".join(json.dumps({"email": f"c{i}@example.com"}) + "\n" for i in range(MAX_ROWS + 1))
    with pytest.raises(LimitExceeded):
        parse_jsonl(too_many)


def test_jsonl_keeps_types_and_reports_bad_lines():
    text = '{"email": "a@example.com", "attributes": {"visits": 3}}\nnot json\n\n[1,2]\n{"email": "b@example.com"}\n'
    parsed = parse_jsonl(text)
    assert [line for line, _ in parsed.rows] == [1, 5]
    assert parsed.rows[0][1]["attributes"]["visits"] == 3
    assert [e["line"] for e in parsed.errors] == [2, 4]


def test_content_type_selects_the_parser_and_bad_bytes_are_refused():
    assert parse_import(b"email\na@example.com\n", "text/csv; charset=utf-8").csv_text_attributes
    assert not parse_import(b'{"email": "a@example.com"}\n', "application/x-ndjson").csv_text_attributes
    with pytest.raises(ValidationFailed):
        parse_import(b"\xff\xfe\x00", "text/csv")
    with pytest.raises(ValidationFailed):
        parse_import(b"   \n", "text/csv")
