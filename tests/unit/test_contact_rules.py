from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain import attributes
from chalicelib.domain.contacts import SHARDS, check_contact, contact_id_for, ordinal_of, shard_of
from chalicelib.domain.errors import LimitExceeded, ValidationFailed
from chalicelib.domain.events import RETENTION_DAYS, check_event, expires_at
from chalicelib.domain.tags import missing_tags, normalise_tag, normalise_tags

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@given(st.integers(min_value=0, max_value=32**7 - 1))
def test_contact_ids_round_trip_to_ordinals(ordinal):
    contact_id = contact_id_for(ordinal)
    assert contact_id.startswith("ctc_") and len(contact_id) == 11
    assert ordinal_of(contact_id) == ordinal
    assert 0 <= shard_of(ordinal) < SHARDS


def test_contact_ids_sort_like_ordinals_and_reject_garbage():
    assert contact_id_for(9) < contact_id_for(10) < contact_id_for(1000)
    for bad in ("ctc_", "ctc_ABCDEFG", "ctc_000000u", "seg_0000001", "p-17", None, 17):
        assert ordinal_of(bad) is None


def test_tag_names_are_case_insensitive_and_checked():
    assert normalise_tag("  VIP ", "tags[0]") == "vip"
    assert normalise_tags(["VIP", "vip", "family-2026", "ns:tier.gold"], "tags") == [
        "vip",
        "family-2026",
        "ns:tier.gold",
    ]
    for bad in ("", "has space", "-lead", "x" * 65, "émoji", 5):
        with pytest.raises(ValidationFailed):
            normalise_tag(bad, "tags[0]")
    with pytest.raises(ValidationFailed) as refused:
        normalise_tags(["ok", "not ok"], "tags")
    assert refused.value.field == "tags[1]"
    assert missing_tags(["a", "b", "c", "b"], {"a"}) == ["b", "c"]


def test_attribute_types_are_inferred_once_then_enforced():
    stored, introduced = attributes.check_attributes(
        {"vip_since": "2024-01-05T10:00:00+02:00", "visits": 3, "opted_in": True, "langs": ["en", "fr"], "note": "hi"},
        {},
    )
    assert stored["vip_since"] == "2024-01-05T08:00:00.000Z"
    assert introduced == {
        "vip_since": "datetime",
        "visits": "number",
        "opted_in": "boolean",
        "langs": "string_list",
        "note": "string",
    }
    with pytest.raises(ValidationFailed) as refused:
        attributes.check_attributes({"visits": "many"}, {"visits": "number"})
    assert refused.value.field == "attributes.visits"
    with pytest.raises(ValidationFailed) as refused:
        attributes.check_attributes({"lifetime_value": "abc"}, {})  # built-in: a number
    assert refused.value.details["expected"] == "number"
    for bad_value in (float("nan"), True):
        with pytest.raises(ValidationFailed):
            attributes.check_attributes({"lat": bad_value}, {})


def test_attribute_size_limits():
    with pytest.raises(LimitExceeded) as refused:
        attributes.check_attributes({"bio": "x" * (2 * 1024 * 1024)}, {})
    assert refused.value.field == "attributes.bio"
    with pytest.raises(LimitExceeded):
        attributes.check_attributes({f"a{i}": i for i in range(attributes.MAX_ATTRIBUTES + 1)}, {})
    with pytest.raises(ValidationFailed) as refused:
        attributes.check_attributes({"Bad-Name": 1}, {})
    assert refused.value.field == "attributes.Bad-Name"


def test_csv_cells_are_typed_by_the_catalog():
    assert attributes.from_text("02134", "string", "a") == "02134"
    assert attributes.from_text("120.5", "number", "a") == 120.5
    assert attributes.from_text("7", "number", "a") == 7
    assert attributes.from_text("yes", "boolean", "a") is True
    assert attributes.from_text("en; fr", "string_list", "a") == ["en", "fr"]
    with pytest.raises(ValidationFailed):
        attributes.from_text("lots", "number", "a")


def test_merge_removes_nulls_and_keeps_the_rest():
    assert attributes.merge({"a": 1, "b": 2}, {"b": None, "c": 3}) == {"a": 1, "c": 3}


def test_check_contact():
    changes = check_contact(
        {"email": " Ana@Example.com ", "first_name": " Ana ", "tags": ["VIP"], "attributes": {"city": "Toronto"}},
        {},
        creating=True,
    )
    assert changes.fields["email"] == "ana@example.com" and changes.fields["first_name"] == "Ana"
    assert changes.tags == ["vip"] and changes.attributes == {"city": "Toronto"}
    for body, field in [
        ({"first_name": "x"}, "email"),
        ({"email": "nope"}, "email"),
        ({"external_id": "has space"}, "external_id"),
        ({"email": "a@b.co", "nickname": "x"}, "nickname"),
        ({"email": "a@b.co", "tags": "vip"}, "tags"),
    ]:
        with pytest.raises(ValidationFailed) as refused:
            check_contact(body, {}, creating=True)
        assert refused.value.field == field, body
    with pytest.raises(ValidationFailed) as refused:
        check_contact({"tags": ["x"]}, {}, creating=False)
    assert refused.value.field == "tags"


def test_events_are_checked_and_normalised():
    event = check_event(
        {"type": "purchase", "at": "2026-11-20T09:00:00-05:00", "amount": 42, "properties": {"category": "family"}},
        NOW,
        "events[0]",
    )
    assert event["at"] == "2026-11-20T14:00:00.000Z" and event["id"].startswith("evt_")
    assert expires_at(event) == int(
        (datetime(2026, 11, 20, 14, tzinfo=UTC) + timedelta(days=RETENTION_DAYS)).timestamp()
    )
    assert (
        check_event({"type": "purchase", "at": "2026-11-20T09:00:00Z", "id": "order-17"}, NOW, "e")["id"] == "order-17"
    )
    cases = [
        ({"type": "purchase", "at": "2026-11-20T09:00:00Z", "amount": "12"}, "events[0].amount"),
        ({"type": "purchase", "at": "2026-11-20T09:00:00Z", "amount": True}, "events[0].amount"),
        ({"type": "purchase", "at": "2026-11-24T12:00:01Z"}, "events[0].at"),
        ({"type": "purchase", "at": "2024-01-01T00:00:00Z"}, "events[0].at"),
        ({"type": "purchase", "at": "yesterday"}, "events[0].at"),
        ({"type": "Purchase!", "at": "2026-11-20T09:00:00Z"}, "events[0].type"),
        (
            {"type": "purchase", "at": "2026-11-20T09:00:00Z", "properties": {"x": {"nested": 1}}},
            "events[0].properties.x",
        ),
        ({"type": "purchase", "at": "2026-11-20T09:00:00Z", "colour": "red"}, "events[0].colour"),
    ]
    for raw, field in cases:
        with pytest.raises(ValidationFailed) as refused:
            check_event(raw, NOW, "events[0]")
        assert refused.value.field == field, raw
    assert check_event({"type": "purchase", "at": "2026-11-23T11:00:00Z"}, NOW, "e")  # within a day ahead
