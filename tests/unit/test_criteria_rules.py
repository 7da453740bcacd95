"""Criteria validation: every rejection names the JSON path of the bad node."""

from __future__ import annotations

import pytest

from chalicelib.domain.criteria import Vocabulary, canonical_text, check_criteria
from chalicelib.domain.errors import LimitExceeded, UnknownTags, ValidationFailed

TAGS = frozenset({"vip", "family", "local"} | {f"t{i}" for i in range(12)})


def vocabulary(**overrides) -> Vocabulary:
    defaults = dict(
        tags=TAGS,
        groups=frozenset({"grp_1"}),
        attributes={"interests": "string_list", "newsletter": "boolean"},
        segments={"seg_a": frozenset(), "seg_b": frozenset({"seg_a"}), "seg_c": frozenset({"seg_b"})},
        tag_limit=10,
    )
    return Vocabulary(**(defaults | overrides))


def rejected(criteria, error=ValidationFailed, **overrides) -> ValidationFailed:
    with pytest.raises(error) as caught:
        check_criteria(criteria, vocabulary(**overrides))
    return caught.value


def test_canonical_form_lowercases_tags_normalises_dates_and_fills_event_defaults():
    checked = check_criteria(
        {
            "all": [
                {"tag": " VIP "},
                {"attr": "signup_at", "op": "gt", "value": "2026-01-01T05:00:00+05:00"},
                {"event": "purchase", "within": "60d"},
            ]
        },
        vocabulary(),
    )
    assert checked.criteria == {
        "all": [
            {"tag": "vip"},
            {"attr": "signup_at", "op": "gt", "value": "2026-01-01T00:00:00.000Z"},
            {"event": "purchase", "within": "60d", "agg": "count", "op": "gte", "value": 1},
        ]
    }
    assert checked.tags == {"vip"} and checked.time_dependent
    assert check_criteria(checked.criteria, vocabulary()).criteria == checked.criteria
    assert canonical_text({"b": 1, "a": 2}) == '{"a":2,"b":1}'


def test_eleven_distinct_tags_exceed_the_tenant_limit_but_repeats_do_not_count():
    eleven = {"any": [{"tag": f"t{i}"} for i in range(11)]}
    error = rejected(eleven, LimitExceeded)
    assert error.details["field"] == "criteria" and error.details["limit"] == 10 and error.details["count"] == 11
    assert check_criteria({"any": [{"tag": "t1"}] * 12}, vocabulary()).tags == {"t1"}
    assert check_criteria(eleven, vocabulary(tag_limit=11)).tags  # the limit is a tenant setting


def test_unknown_tags_are_listed_and_never_created():
    error = rejected({"any": [{"tag": "vip"}, {"tag": "ghost"}, {"not": {"tag": "zombie"}}]}, UnknownTags)
    assert error.details["tags"] == ["ghost", "zombie"]
    assert error.details["field"] == "criteria.any[1].tag"


@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        ({"attr": "lifetime_value", "op": "gt", "value": "abc"}, "criteria.value"),
        ({"attr": "lifetime_value", "op": "median", "value": 1}, "criteria.op"),
        ({"attr": "country", "op": "gt", "value": "CA"}, "criteria.op"),
        ({"attr": "contry", "op": "eq", "value": "CA"}, "criteria.attr"),
        ({"attr": "signup_at", "op": "within_last", "value": "2 months"}, "criteria.value"),
        ({"attr": "signup_at", "op": "eq", "value": "yesterday"}, "criteria.value"),
        ({"attr": "newsletter", "op": "eq", "value": "yes"}, "criteria.value"),
        ({"attr": "country", "op": "exists", "value": "CA"}, "criteria.value"),
        ({"attr": "country", "op": "eq"}, "criteria.value"),
        ({"attr": "country", "op": "in", "value": []}, "criteria.value"),
        ({"attr": "lifetime_value", "op": "between", "value": [10, 1]}, "criteria.value"),
        ({"attr": "lifetime_value", "op": "between", "value": [1]}, "criteria.value"),
        ({"attr": "interests", "op": "eq", "value": "music"}, "criteria.op"),
        ({"event": "purchase", "within": "2 months"}, "criteria.within"),
        ({"event": "purchase", "within": "401d"}, "criteria.within"),
        ({"event": "purchase", "agg": "median", "field": "amount", "op": "gt", "value": 1}, "criteria.agg"),
        ({"event": "purchase", "agg": "sum", "op": "gt", "value": 1}, "criteria.field"),
        ({"event": "purchase", "agg": "count", "field": "amount", "op": "gt", "value": 1}, "criteria.field"),
        ({"event": "purchase", "agg": "sum", "field": "amount"}, "criteria.op"),
        ({"event": "purchase", "agg": "share", "op": "gt", "value": 0.5}, "criteria.where"),
        (
            {"event": "purchase", "agg": "share", "op": "gt", "value": 2, "where": [{"prop": "x", "op": "exists"}]},
            "criteria.value",
        ),
        ({"event": "Purchase!"}, "criteria.event"),
        ({"event": "purchase", "where": [{"prop": "category", "op": "like", "value": "f"}]}, "criteria.where[0].op"),
        ({"event": "purchase", "where": [{"prop": "amount", "op": "eq", "value": "ten"}]}, "criteria.where[0].value"),
        ({"event": "purchase", "where": [{"prop": "seats", "op": "gt", "value": "2"}]}, "criteria.where[0].value"),
        ({"event": "purchase", "where": [{"prop": "c", "op": "eq", "value": 1, "x": 1}]}, "criteria.where[0].x"),
        ({"event": "purchase", "where": []}, "criteria.where"),
        ({"all": []}, "criteria.all"),
        ({"any": {"tag": "vip"}}, "criteria.any"),
        ({"all": [{"tag": "vip"}, {"tag": 7}]}, "criteria.all[1].tag"),
        ({"tag": "vip", "group": "grp_1"}, "criteria"),
        ({"tag": "vip", "extra": 1}, "criteria.extra"),
        ({"vip": True}, "criteria"),
        ({"group": "grp_nope"}, "criteria.group"),
        ({"segment": "seg_nope"}, "criteria.segment"),
        ({"segment": 12}, "criteria.segment"),
        ("vip", "criteria"),
        ([{"tag": "vip"}], "criteria"),
        (None, "criteria"),
        (
            {"all": [{"any": [{"not": {"tag": "vip"}}, {"attr": "city", "op": "eq", "value": 3}]}]},
            "criteria.all[0].any[1].value",
        ),
    ],
)
def test_bad_criteria_name_the_path(criteria, field):
    assert rejected(criteria).details["field"] == field


def test_depth_and_node_limits():
    deep = {"tag": "vip"}
    for _ in range(6):
        deep = {"not": deep}
    error = rejected(deep, LimitExceeded)
    assert error.details["limit"] == 6 and error.details["field"] == "criteria.not.not.not.not.not.not"
    six_deep = {"not": {"not": {"not": {"not": {"not": {"tag": "vip"}}}}}}
    assert check_criteria(six_deep, vocabulary()).tags == {"vip"}
    big = {"any": [{"attr": "city", "op": "eq", "value": str(i)} for i in range(199)]}
    error = rejected(big, LimitExceeded)
    assert error.details["limit"] == 100 and error.details["field"] == "criteria.any[99]"
    assert check_criteria({"any": [{"tag": "vip"}] * 99}, vocabulary()).criteria


def test_a_very_deep_document_stops_at_the_limit_without_recursing_further():
    deep: dict = {"tag": "vip"}
    for _ in range(5_000):
        deep = {"not": deep}
    assert rejected(deep, LimitExceeded).details["limit"] == 6


def test_segment_references_must_exist_be_valid_and_not_loop():
    assert check_criteria({"segment": "seg_c"}, vocabulary()).segments == {"seg_c"}
    own = rejected({"segment": "seg_a"}, segment_id="seg_a")
    assert own.details["cycle"] == ["seg_a", "seg_a"]
    looping = rejected({"any": [{"tag": "vip"}, {"segment": "seg_c"}]}, segment_id="seg_a")
    assert looping.details["field"] == "criteria.any[1].segment"
    assert looping.details["cycle"] == ["seg_a", "seg_c", "seg_b", "seg_a"]
    assert check_criteria({"segment": "seg_a"}, vocabulary(segment_id="seg_c")).segments == {"seg_a"}
    broken = rejected({"segment": "seg_b"}, invalid_segments={"seg_b": "tag gone was deleted"})
    assert "tag gone was deleted" in broken.message


def test_contact_fields_are_addressable_like_attributes():
    checked = check_criteria(
        {
            "all": [
                {"attr": "email", "op": "contains", "value": "@acme"},
                {"attr": "created_at", "op": "within_last", "value": "7d"},
            ]
        },
        vocabulary(),
    )
    assert checked.time_dependent
