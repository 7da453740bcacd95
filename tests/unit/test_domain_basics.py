import base64
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.config import InsecureConfiguration, get_config
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.cursors import decode_cursor, encode_cursor, parse_limit
from chalicelib.domain.emails import is_valid_email, normalise_email
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.ids import looks_like, new_id
from chalicelib.domain.keys import generate_api_key, hash_api_key, is_operator_key
from chalicelib.logs import scrub

SECRET = b"test-secret"


def test_ids_have_prefix_are_unique_and_sort_by_time():
    early = new_id("segment", now_ms=1_000)
    late = new_id("segment", now_ms=2_000)
    assert early.startswith("seg_") and looks_like("segment", early)
    assert early < late
    assert len({new_id("contact") for _ in range(10_000)}) == 10_000
    assert not looks_like("segment", "seg_../../etc") and not looks_like("contact", early)


@given(st.dictionaries(st.text(max_size=10), st.one_of(st.text(max_size=20), st.integers()), min_size=1))
def test_cursor_round_trips_within_scope(position):
    cursor = encode_cursor(position, scope="t1:keys", secret=SECRET)
    assert decode_cursor(cursor, scope="t1:keys", secret=SECRET) == position


def test_cursor_refuses_other_scope_tampering_and_garbage():
    cursor = encode_cursor({"pk": "TENANT#a"}, scope="a", secret=SECRET)
    for bad in (
        encode_cursor({"pk": "TENANT#a"}, scope="b", secret=SECRET),
        cursor[::-1],
        cursor[:-1],
        cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:],
        cursor + "=",
        "garbage",
        "...",
        "%%%.%%%",
        "\x18.\u00bd",
        cursor + "é",
    ):
        with pytest.raises(ValidationFailed) as refused:
            decode_cursor(bad, scope="a", secret=SECRET)
        assert refused.value.field == "cursor"
    assert decode_cursor(None, scope="a", secret=SECRET) is None
    assert encode_cursor(None, scope="a", secret=SECRET) is None


def test_a_cursor_shows_nothing_of_the_key_layout():
    cursor = encode_cursor({"pk": "TENANT#ten_abc#SHARD#00", "sk": "C#ctc_1"}, scope="a", secret=SECRET)
    decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert b"TENANT" not in decoded and b"ten_abc" not in decoded and b"SHARD" not in decoded


def test_limits():
    assert parse_limit(None) == 50 and parse_limit("500") == 500
    for bad in ("0", "501", "-1", "x", "1.5"):
        with pytest.raises(ValidationFailed):
            parse_limit(bad)


def test_rfc3339_round_trip_and_refusals():
    moment = datetime(2026, 11, 22, 10, 15, 30, 123000, tzinfo=UTC)
    assert to_rfc3339(moment) == "2026-11-22T10:15:30.123Z"
    assert parse_rfc3339("2026-11-22T10:15:30.123Z") == moment
    assert parse_rfc3339("2026-11-22T12:15:30.123+02:00") == moment
    for bad in ("2026-11-22", "2026-11-22T10:15:30", "yesterday", ""):
        with pytest.raises(ValueError):
            parse_rfc3339(bad)
    with pytest.raises(ValueError):
        to_rfc3339(datetime(2026, 1, 1))
    assert to_rfc3339(moment.astimezone(timezone(timedelta(hours=-5)))) == "2026-11-22T10:15:30.123Z"


@pytest.mark.parametrize("address", ["a@b.co", "first.last+tag@sub.example.com", "O'Neil@example.org"])
def test_valid_emails(address):
    assert is_valid_email(address)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "plain",
        "a@b",
        "a@@b.co",
        "a b@c.co",
        ".a@b.co",
        "a..b@c.co",
        "a@-b.co",
        "a@b.c",
        None,
        5,
        "x" * 250 + "@b.co",
    ],
)
def test_invalid_emails(address):
    assert not is_valid_email(address)


def test_email_normal_form():
    assert normalise_email("  Ana@Example.COM ") == "ana@example.com"


def test_api_keys_hash_stably_and_compare_constant_time():
    key = generate_api_key()
    assert key.startswith("sgk_") and len(key) > 40
    assert hash_api_key(key) == hash_api_key(key) != hash_api_key(generate_api_key())
    assert re.fullmatch(r"[0-9a-f]{64}", hash_api_key(key))
    assert is_operator_key("abc", "abc") and not is_operator_key("abd", "abc") and not is_operator_key("", "abc")


def test_log_scrubbing_masks_emails_and_keys():
    text = scrub(
        '{"message": "sent to Ana.B@example.com", "auth": "Bearer sgk_abcdefghijklmnop", "k": "sgk_0123456789"}'
    )
    assert "example.com" not in text and "sgk_abcdefghijklmnop" not in text and "sgk_0123456789" not in text
    assert "[email]" in text and "[key]" in text


def test_prod_refuses_default_secrets(monkeypatch):
    get_config.cache_clear()
    try:
        monkeypatch.setenv("SEGMENTS_STAGE", "prod")
        monkeypatch.delenv("SEGMENTS_OPERATOR_KEY", raising=False)
        with pytest.raises(InsecureConfiguration):
            get_config()
        monkeypatch.setenv("SEGMENTS_OPERATOR_KEY", "a-real-operator-key")
        with pytest.raises(InsecureConfiguration):
            get_config()
        monkeypatch.setenv("SEGMENTS_SECRET", "a-real-secret")
        assert get_config().stage == "prod"
    finally:
        get_config.cache_clear()


def test_local_links_follow_the_port_the_api_listens_on(monkeypatch):
    get_config.cache_clear()
    try:
        monkeypatch.delenv("SEGMENTS_PUBLIC_URL", raising=False)
        monkeypatch.setenv("PORT", "8123")
        assert get_config().public_url == "http://127.0.0.1:8123"
        get_config.cache_clear()
        monkeypatch.setenv("SEGMENTS_PUBLIC_URL", "https://segments.example.org/")
        assert get_config().public_url == "https://segments.example.org"
    finally:
        get_config.cache_clear()
