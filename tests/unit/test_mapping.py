"""The item mapping derived from an entity's fields (storage/mapping.py): each kind of field is stored the
way its attribute and type say, and every entity mapped this way comes back from its item field for field.
No table is touched: items are built and read in memory."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from pynamodb.attributes import (
    BooleanAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)

from chalicelib.domain.campaigns import Campaign, RecipientRecord, Suppression
from chalicelib.domain.catalog import Group, Tag
from chalicelib.domain.contacts import Contact
from chalicelib.domain.engagements import Reward
from chalicelib.domain.jobs import Job
from chalicelib.domain.segments import Segment
from chalicelib.domain.triggers import Run, Trigger
from chalicelib.storage import campaigns, catalog, contacts, engagements, jobs, segments, sends, suppressions, triggers
from chalicelib.storage.mapping import Mapper
from chalicelib.storage.table import MainTableModel


@dataclass(frozen=True)
class Sample:
    id: str
    labels: frozenset[str]
    extra: dict[str, Any]
    rules: dict[str, Any] | None
    on: bool
    size: int
    amount: float
    counts: dict[str, int] = field(default_factory=dict)
    note: str = "none"


class SampleItem(MainTableModel):
    sample_id = UnicodeAttribute()
    labels = UnicodeSetAttribute(null=True)
    extra: MapAttribute[str, Any] = MapAttribute(null=True)
    rules = UnicodeAttribute(null=True)
    on = UnicodeAttribute()
    size = NumberAttribute()
    amount = NumberAttribute()
    a = NumberAttribute(null=True)
    b = NumberAttribute(null=True)
    note = UnicodeAttribute(null=True)
    flag = BooleanAttribute(null=True)


MAPPER = Mapper(Sample, SampleItem, renamed={"id": "sample_id"}, spread={"counts": ("a", "b")})


def item_of(attributes: dict[str, Any]) -> SampleItem:
    return SampleItem("pk", "sk", **attributes)


def test_each_kind_of_field_is_stored_as_its_attribute_says_and_read_back():
    sample = Sample("s1", frozenset({"x", "y"}), {"k": [1, 2]}, {"tag": "vip", "all": []}, True, 3, 2.5, {"a": 4})
    stored = MAPPER.attributes(sample)
    assert stored["sample_id"] == "s1" and stored["labels"] == {"x", "y"} and stored["on"] == "true"
    assert stored["rules"] == '{"all": [], "tag": "vip"}'  # canonical JSON
    assert (stored["a"], stored["b"]) == (4, 0)
    assert MAPPER.entity(item_of(stored)) == replace(sample, counts={"a": 4, "b": 0})


def test_empty_sets_and_maps_are_not_stored_and_absent_attributes_read_as_defaults():
    sample = Sample("s2", frozenset(), {}, None, False, 0, 5.0)
    stored = MAPPER.attributes(sample)
    assert stored["labels"] is None and stored["extra"] is None and stored["rules"] is None and stored["on"] == "false"
    read = MAPPER.entity(item_of({**stored, "note": None, "a": None, "b": None}))
    assert read == Sample("s2", frozenset(), {}, None, False, 0, 5, {"a": 0, "b": 0}, "none")
    assert isinstance(read.amount, int)  # a whole number reads back as an int, however it was kept


def test_only_writes_the_fields_asked_for():
    sample = Sample("s3", frozenset({"x"}), {}, None, True, 1, 1.5, {"a": 9})
    assert MAPPER.attributes(sample, only={"id", "size"}) == {"sample_id": "s3", "size": 1}


def test_a_field_without_an_attribute_is_reported_at_once():
    @dataclass(frozen=True)
    class Wider(Sample):
        colour: str = "red"

    with pytest.raises(TypeError, match=r"SampleItem has no attribute for Wider\.colour"):
        Mapper(Wider, SampleItem, renamed={"id": "sample_id"}, spread={"counts": ("a", "b")})


AT = "2026-11-30T10:00:00Z"
ENTITIES = [
    (contacts.CONTACT_MAPPER, contacts.ContactItem,
     Contact("ctc_1", 7, "p-7", "p7@example.com", "Ada", None, "grp_1", frozenset({"vip"}), {"city": "Oslo"}, 3,
             AT, AT)),
    (campaigns.CAMPAIGN_MAPPER, campaigns.CampaignItem,
     Campaign("cmp_1", "Spring", "a@example.com", "Hi", None, "text", ["seg_1"], [], AT, "sending", 2, AT, AT,
              audience=40, shards_done=3, counters={**dict.fromkeys(campaigns.COUNTERS, 0), "sent": 12})),
    (triggers.TRIGGER_MAPPER, triggers.TriggerItem,
     Trigger("trg_1", "Welcome", False, {"type": "contact.created"}, None, [{"type": "add_tag", "tag": "new"}], 1,
             AT, AT)),
    (triggers.RUN_MAPPER, triggers.RunItem,
     Run("run_1", "manual", AT, None, 4, 1, {**dict.fromkeys(triggers.RUN_COUNTERS, 0), "applied": 3})),
    (jobs.JOB_MAPPER, jobs.JobItem,
     Job("job_1", "import", "running", 10, 2, {**dict.fromkeys(jobs.COUNTERS, 0), "created": 4}, {"format": "csv"},
         AT, None)),
    (engagements.REWARD_MAPPER, engagements.RewardItem,
     Reward("rwd_1", "ctc_1", 12.5, "EUR", None, {"type": "challenge", "id": "chl_1"}, AT)),
    (catalog.TAG_MAPPER, catalog.TagItem, Tag("vip", "the best", AT, True)),
    (catalog.GROUP_MAPPER, catalog.GroupItem, Group("grp_1", "Resellers", None, AT)),
    (suppressions.SUPPRESSION_MAPPER, suppressions.SuppressionItem,
     Suppression("a@example.com", "bounce", AT, "cmp_1")),
    (sends.RECORD_MAPPER, sends.SendItem, RecipientRecord("ctc_1", "a@example.com", "sent", AT, None, "ses-1")),
    (segments.SEGMENT_MAPPER, segments.SegmentItem,
     Segment("seg_1", "VIPs", None, {"tag": "vip"}, frozenset({"vip"}), frozenset(), frozenset({"seg_0"}), False, 2,
             "ready", AT, AT, member_count=3, generation="job_1")),
]  # fmt: skip


@pytest.mark.parametrize(("mapper", "item_type", "entity"), ENTITIES, ids=lambda v: type(v).__name__)
def test_every_mapped_entity_comes_back_from_its_item_field_for_field(mapper, item_type, entity):
    assert mapper.entity(item_type("pk", "sk", **mapper.attributes(entity))) == entity
