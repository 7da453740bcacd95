"""The one parser per kind of value (dates, numbers, query whole numbers, CSV/JSON Lines records) against
the hostile corpora of tests/support/hostile.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.clock import (
    EARLIEST,
    LATEST,
    InvalidMoment,
    check_moment,
    parse_rfc3339,
    stored_moment,
    to_rfc3339,
)
from chalicelib.domain.errors import LimitExceeded, ValidationFailed
from chalicelib.domain.imports import MAX_ROWS, parse_csv, parse_jsonl
from chalicelib.domain.values import check_number, loads_json, number_from_text, unstorable_number, whole_number
from tests.support.hostile import (
    HOSTILE_DATETIMES,
    HOSTILE_NUMBERS,
    HOSTILE_QUERY_WHOLE_NUMBERS,
    LINE_BREAKING_CHARACTERS,
    VALID_DATETIMES,
    VALID_NUMBERS,
)


@pytest.mark.parametrize("value", HOSTILE_DATETIMES, ids=repr)
def test_hostile_datetimes_are_refused_with_the_field(value):
    with pytest.raises(InvalidMoment):
        parse_rfc3339(value)
    with pytest.raises(ValidationFailed) as refused:
        check_moment(value, "starts_at")
    assert refused.value.field == "starts_at"
    assert stored_moment(value) is None  # a reader never fails on it


@pytest.mark.parametrize("text, stored", VALID_DATETIMES.items())
def test_valid_datetimes_are_stored_in_one_form(text, stored):
    assert check_moment(text, "at") == stored
    assert check_moment(stored, "at") == stored


@given(st.datetimes(min_value=EARLIEST.replace(tzinfo=None), max_value=LATEST.replace(tzinfo=None)))
def test_whatever_is_stored_reads_back_to_the_same_millisecond(moment):
    moment = moment.replace(tzinfo=UTC, microsecond=moment.microsecond // 1000 * 1000)
    if moment >= LATEST:
        return
    text = to_rfc3339(moment)
    assert len(text) == 24 and text[4] == "-"  # four-digit years, always
    assert parse_rfc3339(text) == moment


def test_a_year_below_1000_was_the_bug_and_is_written_with_four_digits():
    assert to_rfc3339(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000Z"


@pytest.mark.parametrize("value", HOSTILE_NUMBERS, ids=lambda v: repr(v)[:30])
def test_numbers_dynamodb_cannot_store_are_refused(value):
    with pytest.raises(ValidationFailed) as refused:
        check_number(value, "amount")
    assert refused.value.field == "amount"
    assert unstorable_number({"a": [1, {"b": value}]}) == ("a[1].b", unstorable_number(value)[1])
    text = json.dumps(value) if not isinstance(value, int) else str(value)
    with pytest.raises(ValidationFailed):
        number_from_text(text, "attributes.size")


@pytest.mark.parametrize("value", VALID_NUMBERS, ids=repr)
def test_numbers_dynamodb_stores_are_kept(value):
    assert check_number(value, "amount") == value
    assert unstorable_number({"a": value}) is None


def test_json_keeps_huge_integers_exact_so_the_field_can_be_named():
    body = loads_json('{"x": ' + "7" * 5000 + "}")
    assert unstorable_number(body)[0] == "x"
    with pytest.raises(ValueError):
        loads_json('{"x": NaN}')


@pytest.mark.parametrize("text", ["nan", "inf", "1_000", "+5", "0x10", "", "１２"])
def test_csv_number_cells_are_strict(text):
    with pytest.raises(ValidationFailed):
        number_from_text(text, "attributes.size")


@pytest.mark.parametrize("raw", HOSTILE_QUERY_WHOLE_NUMBERS, ids=repr)
def test_query_whole_numbers_are_ascii_digits_in_range(raw):
    with pytest.raises(ValidationFailed) as refused:
        whole_number(raw, "top", 1, 100)
    assert refused.value.field == "top"


def test_query_whole_numbers_default_only_when_absent():
    assert whole_number(None, "limit", 1, 500, default=50) == 50
    assert whole_number("500", "limit", 1, 500) == 500
    with pytest.raises(ValidationFailed):
        whole_number("", "limit", 1, 500, default=50)  # given, but not a number


@pytest.mark.parametrize("character", LINE_BREAKING_CHARACTERS, ids=repr)
def test_only_cr_and_lf_end_a_csv_record(character):
    text = f'external_id,first_name,attributes.note\r\np-1,A{character}na,"x{character}y"\r\np-2,Bo,"two\r\nlines"\n'
    parsed = parse_csv(text)
    assert parsed.errors == []
    assert parsed.rows == [
        (2, {"external_id": "p-1", "first_name": f"A{character}na", "attributes": {"note": f"x{character}y"}}),
        (3, {"external_id": "p-2", "first_name": "Bo", "attributes": {"note": "two\r\nlines"}}),
    ]


@pytest.mark.parametrize("character", LINE_BREAKING_CHARACTERS, ids=repr)
def test_only_lf_ends_a_json_line(character):
    parsed = parse_jsonl(json.dumps({"external_id": f"p{character}1"}, ensure_ascii=False) + "\r\n{}\n")
    assert parsed.errors == []
    assert parsed.rows == [(1, {"external_id": f"p{character}1"}), (2, {})]


def test_an_unclosed_quote_is_its_own_error_and_reading_resumes():
    parsed = parse_csv('external_id,first_name\np-1,"Ana\np-2,Bo\n')
    assert parsed.errors == [{"line": 2, "field": None, "message": "a quoted cell is never closed"}]
    assert parsed.rows == [(3, {"external_id": "p-2", "first_name": "Bo"})]


def test_the_row_limit_stops_reading_at_the_limit():
    body = "external_id\n" + "x\n" * (MAX_ROWS + 1)
    with pytest.raises(LimitExceeded):
        parse_csv(body)
    with pytest.raises(LimitExceeded):
        parse_jsonl("{}\n" * (MAX_ROWS + 1))
    assert len(parse_csv("external_id\n" + "x\n" * MAX_ROWS).rows) == MAX_ROWS


def test_an_oversized_header_field_names_its_column():
    with pytest.raises(ValidationFailed) as refused:
        parse_csv('external_id,"' + "a" * 200_000 + '"\nx,y\n')
    assert refused.value.details["column"] == 2


def test_json_lines_name_the_number_that_cannot_be_stored():
    parsed = parse_jsonl('{"external_id": "p", "attributes": {"n": 1e-300}}\n{"external_id": "q"}\n')
    assert parsed.errors == [{"line": 1, "field": "attributes.n", "message": parsed.errors[0]["message"]}]
    assert [line for line, _ in parsed.rows] == [2]
