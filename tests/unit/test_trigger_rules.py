"""Which occurrence fires which trigger, for which cause; what a trigger may declare; the chain bound."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.domain import triggers as rules
from chalicelib.domain.errors import ValidationFailed


def occurrence(kind: str, **fields) -> rules.Occurrence:
    return rules.Occurrence(kind, contact_id="ctc_1", depth=fields.pop("depth", 0), **fields)


def test_segment_events_fire_for_their_segments_with_the_membership_event_as_cause():
    event = {"type": rules.SEGMENT_ENTERED, "segments": ["seg_a", "seg_b"]}
    assert rules.causes(event, occurrence(rules.SEGMENT_ENTERED, segment_id="seg_b", event_id="sev_1")) == [
        "segment.entered:sev_1"
    ]
    assert rules.causes(event, occurrence(rules.SEGMENT_ENTERED, segment_id="seg_c", event_id="sev_1")) == []
    assert rules.causes(event, occurrence(rules.SEGMENT_EXITED, segment_id="seg_a", event_id="sev_2")) == []


def test_tag_and_event_triggers_name_one_cause_per_version_or_received_event():
    tagged = occurrence(rules.TAG_ADDED, version=7, tags_added=("vip", "news"))
    assert rules.causes({"type": rules.TAG_ADDED, "tag": "vip"}, tagged) == ["tag:vip:v7"]
    assert rules.causes({"type": rules.TAG_ADDED, "tag": "local"}, tagged) == []
    received = occurrence(
        rules.EVENT_RECEIVED,
        events=({"id": "o-1", "type": "purchase", "amount": 70}, {"id": "o-2", "type": "purchase", "amount": 20},
                {"id": "o-3", "type": "refund", "amount": 90}, {"id": "o-4", "type": "purchase", "amount": None}),
    )  # fmt: skip
    assert rules.causes({"type": rules.EVENT_RECEIVED, "event_type": "purchase", "min_amount": 50}, received) == [
        "event:o-1"
    ]
    assert rules.causes({"type": rules.EVENT_RECEIVED, "event_type": "purchase"}, received) == [
        "event:o-1",
        "event:o-2",
        "event:o-4",
    ]
    assert rules.causes({"type": rules.CONTACT_CREATED}, occurrence(rules.CONTACT_CREATED, version=1)) == ["created"]


def test_firing_keys_differ_by_trigger_contact_and_cause_and_are_stable():
    keys = {rules.firing_key(t, c, k) for t in ("trg_1", "trg_2") for c in ("ctc_1", "ctc_2") for k in ("a", "b")}
    assert len(keys) == 8
    assert rules.firing_key("trg_1", "ctc_1", "a") == rules.firing_key("trg_1", "ctc_1", "a")


def test_the_chain_bound_stops_at_max_depth():
    assert [rules.may_fire(depth) for depth in range(rules.MAX_CHAIN_DEPTH + 1)] == [True] * rules.MAX_CHAIN_DEPTH + [
        False
    ]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": rules.TAG_ADDED}, "event.tag"),
        ({"type": rules.EVENT_RECEIVED}, "event.event_type"),
        ({"type": rules.SCHEDULE, "segments": ["s"]}, "event.expression"),
        ({"type": rules.SCHEDULE, "segments": ["s"], "expression": "cron(0 9 * * MON *)"}, "event.expression"),
        ({"type": rules.SCHEDULE, "expression": "rate(1 day)"}, "event.segments"),
        ({"type": rules.SEGMENT_EXITED}, "event.segments"),
        ({"type": rules.CONTACT_CREATED, "min_amount": 5}, "event.min_amount"),
        ({"type": rules.SEGMENT_ENTERED, "segments": ["s"], "tag": "vip"}, "event.tag"),
    ],
)
def test_each_event_type_says_what_it_needs(event, field):
    with pytest.raises(ValidationFailed) as raised:
        rules.check_event_shape(event, datetime(2026, 11, 30, tzinfo=UTC))
    assert raised.value.details["field"] == field


def test_actions_are_one_to_ten_without_contradictions():
    rules.check_actions([{"type": rules.ADD_TAG, "tag": "a"}, {"type": rules.REMOVE_TAG, "tag": "b"}])
    for actions, field in (
        ([], "actions"),
        ([{"type": rules.REWARD, "amount": 1}] * 11, "actions"),
        ([{"type": rules.ADD_TAG, "tag": "a"}, {"type": rules.REMOVE_TAG, "tag": "a"}], "actions[1].tag"),
        ([{"type": rules.SEND_EMAIL, "subject": "x"}] * 2, "actions"),
    ):
        with pytest.raises(ValidationFailed) as raised:
            rules.check_actions(actions)
        assert raised.value.details["field"] == field
