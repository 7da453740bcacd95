"""One set of cases per port, run against its DynamoDB/SQS adapter and its in-memory fake.

A service unit-tested on the fakes (tests/support/fakes.py) can then rely on the adapters behaving
the same: what is stored comes back field for field, conditions refuse what they should, positions
page through everything once, and one tenant's adapter never sees another's data.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from chalicelib.domain.campaigns import (
    CLAIMED,
    DELIVERED,
    RELEASED,
    Campaign,
    Claim,
    Ledger,
    LedgerMoved,
    NotSending,
    Outcome,
    StaleCampaign,
    Suppression,
)
from chalicelib.domain.catalog import AlreadyExists, Group, Tag
from chalicelib.domain.contacts import SHARDS, Contact, StaleContact, TakenIdentifier, contact_id_for, shard_of
from chalicelib.domain.engagements import Engagement, Reward, StaleEngagement
from chalicelib.domain.jobs import Job
from chalicelib.domain.journeys import Journey, Position, StaleJourney
from chalicelib.domain.mail_events import RecipientEvent
from chalicelib.domain.membership import MembershipCommit, SegmentCheck, Stamp, Superseded, Transition
from chalicelib.domain.planner import EVERYONE
from chalicelib.domain.segments import EVALUATING, READY, Segment, SizePoint, StaleSegment
from chalicelib.domain.tenants import ApiKey, KeyOwner, StaleWrite, Tenant
from chalicelib.domain.triggers import Run, StaleTrigger, Trigger
from chalicelib.domain.webhooks import DeliveryRecord, Webhook
from chalicelib.ports.jobs import JobRepository
from chalicelib.ports.webhooks import StaleWebhook
from chalicelib.storage import sends as sends_storage
from chalicelib.storage.campaigns import CampaignTable
from chalicelib.storage.catalog import CatalogTable
from chalicelib.storage.contacts import ContactTable
from chalicelib.storage.engagements import EngagementTable
from chalicelib.storage.jobs import JobTable
from chalicelib.storage.journeys import JourneyTable, due_positions, due_scheduled
from chalicelib.storage.membership import MembershipTable
from chalicelib.storage.outbox import OutboxTable
from chalicelib.storage.queues import SqsQueues
from chalicelib.storage.segments import SegmentTable
from chalicelib.storage.sends import SendTable
from chalicelib.storage.snapshots import SnapshotBucket
from chalicelib.storage.suppressions import SuppressionTable
from chalicelib.storage.tenants import TenantAccountTable, TenantDirectoryTable
from chalicelib.storage.trail import AuditTrailTable
from chalicelib.storage.triggers import TriggerTable
from chalicelib.storage.webhooks import WebhookTable
from tests.support.fakes import (
    InMemoryCampaigns,
    InMemoryCatalog,
    InMemoryContacts,
    InMemoryDirectory,
    InMemoryEngagements,
    InMemoryJobs,
    InMemoryJourneys,
    InMemoryMembership,
    InMemoryOutbox,
    InMemorySegments,
    InMemorySends,
    InMemorySnapshots,
    InMemorySuppressions,
    InMemoryTrail,
    InMemoryTriggers,
    InMemoryWebhooks,
    RecordingQueues,
)
from tests.support.queues import take_messages

ADAPTERS = ["dynamodb", "memory"]


def new_tenant() -> str:
    return f"tenant_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=ADAPTERS)
def segment_repos(request):
    """Two tenants' repositories of one kind."""
    make = SegmentTable if request.param == "dynamodb" else InMemorySegments
    return make(new_tenant()), make(new_tenant())


@pytest.fixture(params=ADAPTERS)
def job_repo(request) -> JobRepository:
    return (JobTable if request.param == "dynamodb" else InMemoryJobs)(new_tenant())


def a_segment(segment_id: str = "seg_1", **fields: Any) -> Segment:
    base = Segment(
        id=segment_id,
        name="Local VIPs",
        description="who we mail first",
        criteria={"all": [{"tag": "vip"}, {"attr": "city", "op": "eq", "value": "Toronto"}]},
        tags=frozenset({"vip"}),
        groups=frozenset({"grp_1"}),
        references=frozenset({"seg_0"}),
        time_dependent=True,
        version=1,
        status=EVALUATING,
        created_at="2026-11-30T10:00:00Z",
        updated_at="2026-11-30T10:00:00Z",
        job_id="job_1",
    )
    return replace(base, **fields)


# --- SegmentRepository ------------------------------------------------------------------------------------


def test_a_segment_comes_back_field_for_field_and_only_to_its_tenant(segment_repos):
    mine, theirs = segment_repos
    segment = a_segment(status_reason=None, member_count=None)
    mine.create(segment)
    assert mine.get("seg_1") == segment
    assert mine.all_segments() == [segment]
    assert theirs.get("seg_1") is None and theirs.all_segments() == []
    empty = a_segment("seg_2", description=None, tags=frozenset(), groups=frozenset(), references=frozenset())
    mine.create(empty)
    assert mine.get("seg_2") == empty


def test_pages_list_every_segment_once(segment_repos):
    mine, _ = segment_repos
    for n in range(5):
        mine.create(a_segment(f"seg_{n}"))
    seen, position = [], None
    while True:
        items, position = mine.page(2, position)
        seen += [s.id for s in items]
        if position is None:
            break
    assert sorted(seen) == [f"seg_{n}" for n in range(5)] and len(seen) == 5


def test_an_edit_keeps_what_evaluations_own_and_a_stale_edit_is_refused(segment_repos):
    mine, _ = segment_repos
    before = a_segment()
    mine.create(before)
    assert mine.update_fields("seg_1", member_count=7, evaluated_at="2026-11-30T10:05:00Z")
    after = replace(before, name="Renamed", version=2, updated_at="2026-11-30T11:00:00Z", member_count=None)
    mine.save(before, after)
    stored = mine.get("seg_1")
    assert stored is not None and stored.name == "Renamed" and stored.version == 2
    assert stored.member_count == 7 and stored.evaluated_at == "2026-11-30T10:05:00Z"
    with pytest.raises(StaleSegment):
        mine.save(before, replace(after, name="Lost update"))
    versions, _ = mine.versions("seg_1", 10, None)
    assert [(v["version"], v["name"]) for v in versions] == [(2, "Renamed"), (1, "Local VIPs")]
    first, position = mine.versions("seg_1", 1, None)
    rest, _ = mine.versions("seg_1", 1, position)
    assert [v["version"] for v in first + rest] == [2, 1]


def test_bookkeeping_fields_are_conditional_on_the_job_the_segment_waits_for(segment_repos):
    mine, _ = segment_repos
    mine.create(a_segment())
    assert not mine.update_fields("seg_1", expected_job_id="job_0", job_id="job_2")
    assert mine.update_fields("seg_1", expected_job_id="job_1", job_id="job_2", status_reason="why")
    assert mine.get("seg_1").job_id == "job_2"
    assert mine.update_fields("seg_1", status_reason=None)
    assert mine.get("seg_1").status_reason is None
    assert not mine.update_fields("seg_missing", status=READY)


def test_membership_generations_flip_once_and_page_in_shard_order(segment_repos):
    mine, theirs = segment_repos
    mine.create(a_segment())
    members = {5, 5 + SHARDS, 7, 200, 1, 3 * SHARDS + 1}
    for shard in range(SHARDS):
        mine.write_shard_members("seg_1", "job_1", shard, [o for o in members if o % SHARDS == shard])
    mine.write_shard_members("seg_1", "job_1", 7 % SHARDS, [7, 9999 * SHARDS + 7])  # a retry rewrites its shard
    expected = (members - {7}) | {7, 9999 * SHARDS + 7}
    assert mine.members("seg_1", "job_1") == expected and mine.count_members("seg_1", "job_1") == len(expected)
    assert mine.shard_members("seg_1", "job_1", 7 % SHARDS) == {7, 9999 * SHARDS + 7}
    assert theirs.members("seg_1", "job_1") == set()
    with pytest.raises(StaleSegment):
        mine.publish("seg_1", "job_0", {"status": READY})
    assert mine.publish("seg_1", "job_1", {"status": READY}) is None  # nothing published before
    assert mine.publish("seg_1", "job_1", {"status": READY}) is None  # repeated: the same answer
    flipped = mine.get("seg_1")
    assert (flipped.generation, flipped.member_count, flipped.status) == ("job_1", len(expected), READY)
    listed, position = [], None
    while True:
        ordinals, position = mine.page_of_members("seg_1", "job_1", 2, position)
        listed += ordinals
        if position is None:
            break
    assert listed == sorted(expected, key=lambda o: (o % SHARDS, o))
    assert mine.update_fields("seg_1", job_id="job_2")
    mine.write_shard_members("seg_1", "job_2", 1, [1])
    assert mine.publish("seg_1", "job_2", {"status": READY}) == "job_1"
    mine.delete_generation("seg_1", "job_1")
    assert mine.members("seg_1", "job_1") == set() and mine.members("seg_1", "job_2") == {1}


def test_a_deleted_segment_takes_its_history_and_members_with_it(segment_repos):
    mine, _ = segment_repos
    mine.create(a_segment())
    mine.write_shard_members("seg_1", "job_1", 0, [SHARDS])
    mine.delete("seg_1")
    assert mine.get("seg_1") is None and mine.members("seg_1", "job_1") == set()
    assert mine.versions("seg_1", 10, None)[0] == []


def test_a_transition_counts_once_on_its_day_and_the_history_is_the_tenants_own(segment_repos):
    mine, theirs = segment_repos
    mine.create(a_segment())
    assert mine.count_transition("seg_1", "2026-11-30", True, "evt_a", 4, 1_900_000_000)
    assert not mine.count_transition("seg_1", "2026-11-30", True, "evt_a", 4, 1_900_000_000)  # redelivered
    assert mine.count_transition("seg_1", "2026-11-30", False, "evt_b", None, 1_900_000_000)
    assert mine.count_transition("seg_1", "2026-12-01", True, "evt_c", 5, 1_900_000_000)
    mine.record_members("seg_1", "2026-12-01", 7, 1_900_000_000)
    mine.record_members("seg_1", "2026-12-02", 6, 1_900_000_000)
    assert mine.size_points("seg_1") == [
        SizePoint("2026-11-30", 4, 1, 1),  # a count without members keeps the members it had
        SizePoint("2026-12-01", 7, 1, 0),
        SizePoint("2026-12-02", 6, 0, 0),
    ]
    assert theirs.size_points("seg_1") == []
    assert theirs.count_transition("seg_1", "2026-11-30", True, "evt_a", 1, 1_900_000_000)  # theirs to count
    mine.delete("seg_1")
    assert mine.size_points("seg_1") == []


# --- JobRepository -----------------------------------------------------------------------------------------


def a_job(job_id: str = "job_1") -> Job:
    return Job(job_id, "import", "running", 3, 2, {}, {"format": "csv"}, "2026-11-30T10:00:00Z", None)


def test_a_chunk_finishes_once_and_its_counts_add_up(job_repo):
    job_repo.create_job(a_job(), [{"rows": [1]}, {"rows": [2]}], [{"line": 4, "field": "email", "message": "bad"}])
    job = job_repo.get_job("job_1")
    assert job.chunks_total == 2 and job.counts["failed"] == 1 and job.counts["processed"] == 1
    assert job_repo.load_chunk("job_1", 1) == ("pending", {"rows": [2]}) and job_repo.load_chunk("job_1", 9) is None
    assert job_repo.finish_chunk("job_1", 0, {"created": 2, "processed": 2})
    assert not job_repo.finish_chunk("job_1", 0, {"created": 2, "processed": 2})  # redelivered
    job = job_repo.get_job("job_1")
    assert (job.counts["created"], job.counts["processed"], job.counts["chunks_done"]) == (2, 3, 1)
    assert job_repo.pending_chunks("job_1") == [1]
    assert job_repo.get_job("job_missing") is None


def test_status_moves_only_from_the_expected_one(job_repo):
    job_repo.create_job(a_job(), [{}], [])
    assert not job_repo.set_status("job_1", "succeeded", expected="failed")
    assert job_repo.set_status("job_1", "failed", expected="running", finished_at="2026-11-30T10:01:00Z")
    job_repo.set_detail("job_1", {"failure": "boom"})
    job = job_repo.get_job("job_1")
    assert (job.status, job.finished_at, job.detail) == ("failed", "2026-11-30T10:01:00Z", {"failure": "boom"})


def test_row_problems_page_in_line_order(job_repo):
    problems = [{"line": n, "field": None, "message": f"row {n}"} for n in (9, 2, 5)]
    job_repo.create_job(a_job(), [{}], problems)
    first, position = job_repo.list_errors("job_1", 2, None)
    rest, end = job_repo.list_errors("job_1", 2, position)
    assert [e["line"] for e in first + rest] == [2, 5, 9] and end is None
    assert first[0] == {"line": 2, "field": None, "message": "row 2"}


def test_the_lane_holds_at_most_its_limit_and_leaving_is_idempotent(job_repo):
    assert job_repo.enter_lane("job_1", 2) and job_repo.enter_lane("job_2", 2)
    assert job_repo.enter_lane("job_1", 2)  # already in
    assert not job_repo.enter_lane("job_3", 2)
    job_repo.leave_lane({"job_1"})
    job_repo.leave_lane({"job_1", "job_never"})
    assert job_repo.lane() == {"job_2"} and job_repo.enter_lane("job_3", 2)


# --- CatalogRepository and MessageQueues -------------------------------------------------------------------------


@pytest.fixture(params=ADAPTERS)
def catalogs(request):
    if request.param == "dynamodb":
        return CatalogTable(new_tenant()), CatalogTable(new_tenant())
    return InMemoryCatalog(), InMemoryCatalog()


def test_tags_are_made_once_described_listed_and_deleted(catalogs):
    mine, theirs = catalogs
    for name in ("vip", "local", "gone"):
        mine.create_tag(Tag(name, None, AT))
    with pytest.raises(AlreadyExists):
        mine.create_tag(Tag("vip", "again", AT))
    mine.update_tag_description("vip", "our best")
    mine.mark_tag_deleting("gone")
    assert mine.get_tag("vip") == Tag("vip", "our best", AT) and mine.get_tag("gone").deleting
    assert mine.usable_tag_names() == {"vip", "local"} and theirs.usable_tag_names() == set()
    listed, position = mine.list_tags(2, None)
    while position is not None:
        more, position = mine.list_tags(2, position)
        listed += more
    assert sorted(t.name for t in listed) == ["gone", "local", "vip"]
    mine.delete_tag("gone")
    assert mine.get_tag("gone") is None


def test_group_names_are_unique_without_case_and_follow_a_rename(catalogs):
    mine, theirs = catalogs
    gold = Group("grp_1", "Gold", None, AT)
    mine.create_group(gold)
    with pytest.raises(AlreadyExists):
        mine.create_group(Group("grp_2", "GOLD", None, AT))
    theirs.create_group(Group("grp_9", "Gold", None, AT))  # another tenant's name space
    assert mine.find_group_by_name("gold") == gold and mine.get_group("grp_9") is None
    silver = Group("grp_2", "Silver", "second", AT)
    mine.create_group(silver)
    with pytest.raises(AlreadyExists):
        mine.update_group(silver, Group("grp_2", "gold", "second", AT))
    platinum = Group("grp_1", "Platinum", None, AT)
    mine.update_group(gold, platinum)
    assert mine.find_group_by_name("gold") is None and mine.find_group_by_name("PLATINUM") == platinum
    mine.mark_group_deleting("grp_2")
    assert mine.usable_group_ids() == {"grp_1"} and [g.id for g in mine.all_groups()] == ["grp_1", "grp_2"]
    mine.delete_group(mine.get_group("grp_2"))
    assert mine.get_group("grp_2") is None and mine.find_group_by_name("silver") is None


def test_an_attribute_keeps_the_type_its_first_value_gave_it(catalogs):
    mine, theirs = catalogs
    assert mine.register_attribute_type("city", "string") == "string"
    assert mine.register_attribute_type("city", "number") == "string"
    assert mine.attribute_types() == {"city": "string"} and theirs.attribute_types() == {}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_queues_take_every_message_in_batches(adapter):
    from chalicelib.resources import MEMBERSHIP_EVENTS_QUEUE

    tenant_id = new_tenant()
    queues = SqsQueues() if adapter == "dynamodb" else RecordingQueues()
    messages = [{"tenant_id": tenant_id, "n": n} for n in range(23)]
    assert queues.send(MEMBERSHIP_EVENTS_QUEUE, iter(messages)) == 23
    received = (
        take_messages(MEMBERSHIP_EVENTS_QUEUE, tenant_id)
        if adapter == "dynamodb"
        else queues.take(MEMBERSHIP_EVENTS_QUEUE)
    )
    assert sorted(m["n"] for m in received) == list(range(23))


# --- ContactReader -------------------------------------------------------------------------------------------


def _contact(ordinal: int, *tags: str, **fields: Any) -> Contact:
    return Contact(
        id=contact_id_for(ordinal),
        ordinal=ordinal,
        external_id=f"p-{ordinal}",
        email=f"p{ordinal}@example.com",
        tags=frozenset(tags),
        attributes=fields,
        version=1,
        created_at="2026-11-30T10:00:00Z",
        updated_at="2026-11-30T10:00:00Z",
    )


AT = "2026-11-30T10:00:00Z"
PURCHASE = {"id": "evt_b", "type": "purchase", "at": "2026-11-29T10:00:00Z", "amount": 12.5, "properties": {"sku": "x"}}
VISIT = {"id": "evt_a", "type": "visit", "at": "2026-11-28T10:00:00Z", "amount": None, "properties": {}}


@pytest.fixture(params=ADAPTERS)
def contact_reader(request):
    """A reader over four contacts (two in one shard), the first with two events, seeded the adapter's way."""
    tenant_id = new_tenant()
    people = [_contact(1, "vip", city="Oslo"), _contact(1 + SHARDS, "vip"), _contact(2), _contact(7, "local")]
    if request.param == "dynamodb":
        ContactTable(tenant_id).write([(None, c) for c in people])
        ContactTable(tenant_id).put_events_many([(people[0], [PURCHASE, VISIT], [2_000_000_000, 2_000_000_000])])
        return ContactTable(tenant_id), people
    reader = InMemoryContacts(tenant_id)
    for contact in people:
        reader.put(contact, [PURCHASE, VISIT] if contact is people[0] else [])
    return reader, people


def test_contacts_read_by_id_with_their_events_in_id_order(contact_reader):
    reader, people = contact_reader
    found = reader.get_contacts([people[0].id, people[2].id, "ctc_missing", contact_id_for(99)])
    assert found == {people[0].id: people[0], people[2].id: people[2]}
    contact, events = reader.read_contact(people[0].id)
    assert contact == people[0] and [e["id"] for e in events] == ["evt_a", "evt_b"]
    assert events[1] == PURCHASE
    assert reader.read_contact(contact_id_for(99)) == (None, [])


def test_a_shard_is_read_whole_with_or_without_events(contact_reader):
    reader, people = contact_reader
    contacts, events = reader.read_shard(1)
    assert [c.id for c in contacts] == sorted([people[0].id, people[1].id]) and list(events) == [people[0].id]
    contacts, events = reader.read_shard(1, with_events=False)
    assert len(contacts) == 2 and events == {}
    assert reader.read_shard(5) == ([], {})


def test_posting_lists_and_counts_follow_the_tags(contact_reader):
    reader, people = contact_reader
    lists = reader.postings(["vip", "local", "nobody", EVERYONE])
    assert lists["vip"].tolist() == [1, 1 + SHARDS] and lists["local"].tolist() == [7] and lists["nobody"].size == 0
    assert lists[EVERYONE].tolist() == sorted(c.ordinal for c in people)
    assert (reader.count_tag("vip"), reader.count_tag(EVERYONE), reader.count_tag("nobody")) == (2, 4, 0)


# --- MembershipLedger ----------------------------------------------------------------------------------------


@pytest.fixture(params=ADAPTERS)
def ledger(request):
    """A membership ledger and the segment repository of the same tenant, holding one published segment."""
    tenant_id = new_tenant()
    if request.param == "dynamodb":
        segments, membership = SegmentTable(tenant_id), MembershipTable(tenant_id)
    else:
        segments = InMemorySegments(tenant_id)
        membership = InMemoryMembership(segments)
    segments.create(a_segment(status=READY, job_id="job_1"))
    segments.write_shard_members("seg_1", "job_1", 3, [3])
    segments.publish("seg_1", "job_1", {"status": READY})
    return segments, membership


def test_a_commit_moves_counts_and_announces_at_once_and_only_from_the_stamp_it_read(ledger):
    segments, membership = ledger
    ordinal, contact_id = 5, contact_id_for(5)
    stamp = membership.read_stamps([(contact_id, ordinal)])[contact_id]
    assert stamp == Stamp() and membership.memberships([ordinal], [("seg_1", "job_1")]) == {
        ordinal: {("seg_1", "job_1"): False}
    }
    event = {"id": "mev_1", "type": "segment.entered", "segment_id": "seg_1", "contact_id": contact_id}
    check = SegmentCheck("seg_1", "job_1", "job_1", 1, False)
    move = Transition("seg_1", "job_1", True, True)
    membership.commit(MembershipCommit(contact_id, ordinal, stamp, {"job_1": True}, [move], [check], [event], AT))
    assert membership.memberships([ordinal, 3, 4], [("seg_1", "job_1"), ("seg_1", "job_0")]) == {
        ordinal: {("seg_1", "job_1"): True, ("seg_1", "job_0"): False},
        3: {("seg_1", "job_1"): True, ("seg_1", "job_0"): False},
        4: {("seg_1", "job_1"): False, ("seg_1", "job_0"): False},
    }
    assert segments.get("seg_1").member_count == 2
    assert membership.read_stamps([(contact_id, ordinal), (contact_id_for(21), 21)]) == {
        contact_id: Stamp(1, {"job_1": True}),
        contact_id_for(21): Stamp(),
    }
    assert membership.pending_events(contact_id, ordinal) == [event]
    with pytest.raises(Superseded):  # computed from the old stamp: refused, nothing moves
        membership.commit(MembershipCommit(contact_id, ordinal, stamp, {}, [replace(move, enter=False)], [], [], AT))
    assert segments.members("seg_1", "job_1") == {3, 5}
    membership.forget_events(contact_id, ordinal, ["mev_1"])
    assert membership.pending_events(contact_id, ordinal) == []


def test_a_commit_checked_against_a_segment_that_moved_on_is_superseded(ledger):
    segments, membership = ledger
    assert segments.update_fields("seg_1", job_id="job_2")  # an evaluation started meanwhile
    stale = SegmentCheck("seg_1", "job_1", "job_1", 1, False)
    with pytest.raises(Superseded):
        moved = [Transition("seg_1", "job_1", True, True)]
        membership.commit(MembershipCommit(contact_id_for(5), 5, Stamp(), {}, moved, [stale], [], AT))
    assert segments.members("seg_1", "job_1") == {3}
    assert membership.read_stamps([(contact_id_for(5), 5)]) == {contact_id_for(5): Stamp()}


def test_stamps_changed_since_a_moment_are_found_per_shard(ledger):
    _, membership = ledger
    for ordinal, at in ((5, "2026-11-30T09:00:00Z"), (5 + SHARDS, "2026-11-30T11:00:00Z"), (6, "2026-11-30T11:00:00Z")):
        membership.commit(MembershipCommit(contact_id_for(ordinal), ordinal, Stamp(), {}, [], [], [], at))
    assert membership.stamps_changed_since(5, "2026-11-30T10:00:00Z") == [contact_id_for(5 + SHARDS)]
    assert sorted(membership.stamps_changed_since(5, "2026-11-30T08:00:00Z")) == sorted(
        [contact_id_for(5), contact_id_for(5 + SHARDS)]
    )


# --- EngagementRepository ------------------------------------------------------------------------------------


@pytest.fixture(params=ADAPTERS)
def engagement_repos(request):
    make = EngagementTable if request.param == "dynamodb" else InMemoryEngagements
    return make(new_tenant()), make(new_tenant())


def an_engagement(engagement_id: str = "ann_1", kind: str = "announcement", **fields: Any) -> Engagement:
    base = Engagement(
        id=engagement_id,
        kind=kind,
        name="Spring",
        segments=["seg_1"],
        starts_at="2026-11-01T00:00:00Z",
        ends_at="2026-12-31T00:00:00Z",
        status="enabled",
        version=1,
        created_at="2026-11-01T00:00:00Z",
        updated_at="2026-11-01T00:00:00Z",
        body="Hello",
    )
    return replace(base, **fields)


def test_announcements_and_challenges_come_back_whole_by_kind_and_tenant(engagement_repos):
    mine, theirs = engagement_repos
    announcement = an_engagement()
    challenge = an_engagement(
        "chl_1", "challenge", goal={"event_type": "purchase", "count": 2}, reward={"amount": 5, "currency": "EUR"}
    )
    mine.create(announcement)
    mine.create(challenge)
    assert mine.get("announcement", "ann_1") == announcement and mine.get("challenge", "chl_1") == challenge
    assert mine.get("challenge", "ann_1") is None and theirs.all_of("announcement") == []
    assert mine.all_of("challenge") == [challenge]
    listed, position = mine.page("announcement", 1, None)
    while position is not None:  # a page may end exactly at the last item and still say where to go on
        more, position = mine.page("announcement", 1, position)
        listed += more
    assert listed == [announcement]


def test_an_engagement_changed_meanwhile_is_neither_saved_nor_deleted(engagement_repos):
    mine, _ = engagement_repos
    before = an_engagement()
    mine.create(before)
    after = replace(before, name="Summer", version=2)
    mine.save(before, after)
    with pytest.raises(StaleEngagement):
        mine.save(before, replace(before, name="Lost", version=2))
    with pytest.raises(StaleEngagement):
        mine.delete(before)
    mine.delete(after)
    assert mine.get("announcement", "ann_1") is None


def test_a_reward_is_written_once_per_id(engagement_repos):
    mine, theirs = engagement_repos
    contact_id = contact_id_for(4)
    reward = Reward("rw_b", contact_id, 5, "EUR", "for the spring", {"type": "challenge", "id": "chl_1"}, AT)
    assert mine.add_reward(4, reward) and not mine.add_reward(4, replace(reward, amount=9))
    mine.put_rewards([(4, Reward("rw_a", contact_id, 2.5, "EUR", None, {}, AT)), (4, reward)])
    rewards = mine.all_rewards(contact_id, 4)
    assert [(r.id, r.amount) for r in rewards] == [("rw_a", 2.5), ("rw_b", 5)] and rewards[1] == reward
    first, position = mine.rewards_page(contact_id, 4, 1, None)
    rest, _ = mine.rewards_page(contact_id, 4, 1, position)
    assert [r.id for r in first + rest] == ["rw_a", "rw_b"]
    assert theirs.all_rewards(contact_id, 4) == []


# --- TenantDirectory and TenantAccount -----------------------------------------------------------------------


@pytest.fixture(params=ADAPTERS)
def directory(request):
    """The directory, and how to get a tenant's account from it."""
    if request.param == "dynamodb":
        return TenantDirectoryTable(), TenantAccountTable
    made = InMemoryDirectory()
    return made, made.account


def a_tenant(name: str = "Acme") -> tuple[Tenant, ApiKey, str]:
    tenant_id = new_tenant()
    tenant = Tenant(tenant_id, name, {"segments": True}, {"send_rate_per_second": 7}, AT, 0)
    key = ApiKey(f"key_{tenant_id}", tenant_id, "first admin", "admin", "sgk_…abcd", AT)
    return tenant, key, f"hash-{tenant_id}"


def test_a_tenant_is_made_with_its_admin_key_and_its_key_leads_back_to_it(directory):
    tenants, account_of = directory
    tenant, key, key_hash = a_tenant()
    tenants.create_tenant(tenant, key, key_hash)
    stored = tenants.get_tenant(tenant.id)
    assert (stored.name, stored.features, stored.settings) == ("Acme", {"segments": True}, {"send_rate_per_second": 7})
    assert tenants.find_key_by_hash(key_hash) == KeyOwner(tenant.id, key.id, "admin", "first admin")
    assert tenants.find_key_by_hash("hash-unknown") is None and tenants.get_tenant("ten_missing") is None
    assert account_of(tenant.id).tenant() == stored
    seen, position = [], None
    while True:
        page, position = tenants.list_tenants(50, position)
        seen += [t.id for t in page]
        if position is None:
            break
    assert tenant.id in seen


def test_tenant_fields_are_written_only_from_the_version_read(directory):
    tenants, account_of = directory
    tenant, key, key_hash = a_tenant()
    tenants.create_tenant(tenant, key, key_hash)
    read = tenants.get_tenant(tenant.id)
    renamed = tenants.save_tenant_fields(read, name="Acme 2")
    assert renamed.name == "Acme 2" and renamed.version > read.version
    with pytest.raises(StaleWrite):
        tenants.save_tenant_fields(read, name="Lost")
    moved = account_of(tenant.id).save_fields(renamed, settings={"jobs_at_once": 2})
    assert moved.settings == {"jobs_at_once": 2} and tenants.get_tenant(tenant.id).name == "Acme 2"


def test_a_tenant_account_holds_its_keys_only(directory):
    tenants, account_of = directory
    tenant, key, key_hash = a_tenant()
    other, other_key, other_hash = a_tenant("Other")
    tenants.create_tenant(tenant, key, key_hash)
    tenants.create_tenant(other, other_key, other_hash)
    mine = account_of(tenant.id)
    viewer = ApiKey("key_viewer", tenant.id, "viewer", "viewer", "sgk_…wxyz", AT)
    mine.put_api_key(viewer, "hash-viewer")
    listed, position = mine.list_api_keys(1, None)
    while position is not None:
        more, position = mine.list_api_keys(1, position)
        listed += more
    assert sorted(k.id for k in listed) == sorted([key.id, "key_viewer"])
    assert mine.admin_key_ids() == [key.id] and mine.get_api_key("key_viewer") == (viewer, "hash-viewer")
    assert account_of(other.id).get_api_key("key_viewer") is None
    assert mine.delete_api_key("key_viewer", "hash-viewer") and not mine.delete_api_key("key_viewer", "hash-viewer")
    assert tenants.find_key_by_hash("hash-viewer") is None and mine.get_api_key("key_viewer") is None


# --- SuppressionList -----------------------------------------------------------------------------------------


@pytest.fixture(params=ADAPTERS)
def suppression_lists(request):
    make = SuppressionTable if request.param == "dynamodb" else InMemorySuppressions
    return make(new_tenant()), make(new_tenant())


def test_an_address_is_suppressed_once_with_its_first_reason(suppression_lists):
    mine, theirs = suppression_lists
    bounced = Suppression("ada@example.com", "bounce", AT, "cmp_1")
    assert mine.suppress(bounced) and not mine.suppress(Suppression("ada@example.com", "manual", AT))
    assert mine.get_suppression("ada@example.com") == bounced and theirs.get_suppression("ada@example.com") is None
    for address in ("cy@example.com", "bo@example.com"):
        mine.suppress(Suppression(address, "manual", AT))
    listed, position = mine.suppressions_page(2, None)
    while position is not None:
        more, position = mine.suppressions_page(2, position)
        listed += more
    assert [s.email for s in listed] == ["ada@example.com", "bo@example.com", "cy@example.com"]
    mine.unsuppress("ada@example.com")
    mine.unsuppress("ada@example.com")  # idempotent
    assert mine.get_suppression("ada@example.com") is None


# --- AuditTrail ----------------------------------------------------------------------------------------------


@pytest.fixture(params=ADAPTERS)
def trails(request):
    make = AuditTrailTable if request.param == "dynamodb" else InMemoryTrail
    return make(new_tenant()), make(new_tenant())


def test_a_key_window_holds_its_limit_per_second_and_tenant(trails):
    mine, theirs = trails
    assert [mine.take_request("key_a", 100, 3) for _ in range(4)] == [True, True, True, False]
    assert mine.take_request("key_b", 100, 3) and mine.take_request("key_a", 101, 3)
    assert theirs.take_request("key_a", 100, 3)


def test_audit_entries_come_back_newest_first(trails):
    mine, theirs = trails
    for n in range(3):
        mine.record(f"2026-11-30T10:00:0{n}.000Z", f"req-{n}", {"action": f"POST /tags {n}"}, 2_000_000_000)
    listed, position = mine.audit_page(2, None)
    while position is not None:
        more, position = mine.audit_page(2, position)
        listed += more
    assert [e["action"] for e in listed] == ["POST /tags 2", "POST /tags 1", "POST /tags 0"]
    assert theirs.audit_page(10, None) == ([], None)


# --- TriggerRepository ---------------------------------------------------------------------------------------


@pytest.fixture(params=ADAPTERS)
def trigger_repos(request):
    make = TriggerTable if request.param == "dynamodb" else InMemoryTriggers
    return make(new_tenant()), make(new_tenant())


def a_trigger(trigger_id: str = "trg_1", **fields: Any) -> Trigger:
    base = Trigger(
        id=trigger_id,
        name="Daily VIP reward",
        enabled=True,
        event={"type": "schedule", "expression": "rate(1 day)", "segments": ["seg_1"]},
        conditions={"tag": "vip"},
        actions=[{"type": "reward", "amount": 2}],
        version=1,
        created_at=AT,
        updated_at=AT,
        next_run_at="2026-12-01T10:00:00Z",
    )
    return replace(base, **fields)


def test_triggers_come_back_whole_and_change_only_from_the_version_read(trigger_repos):
    mine, theirs = trigger_repos
    trigger = a_trigger()
    mine.create(trigger)
    assert mine.get("trg_1") == trigger and mine.all_triggers() == [trigger] and theirs.get("trg_1") is None
    after = replace(trigger, name="Renamed", version=2, conditions=None)
    mine.save(trigger, after)
    assert mine.get("trg_1") == after
    with pytest.raises(StaleTrigger):
        mine.save(trigger, replace(trigger, name="Lost", version=2))
    assert mine.advance_schedule(after, "2026-12-02T10:00:00Z")
    assert not mine.advance_schedule(after, "2026-12-03T10:00:00Z")  # another worker moved it already
    moved = mine.get("trg_1")
    assert moved.next_run_at == "2026-12-02T10:00:00Z"
    with pytest.raises(StaleTrigger):
        mine.delete(trigger)
    mine.delete(moved)
    assert mine.get("trg_1") is None


def test_a_run_counts_each_batch_once_and_finishes_when_all_are_done(trigger_repos):
    mine, _ = trigger_repos
    run = Run("run_1", "manual", AT, None, None, 0)
    assert mine.start_run("trg_1", run, [["ctc_a", "ctc_b"], ["ctc_c"]])
    assert not mine.start_run("trg_1", run, [["ctc_x"]])
    assert mine.batch_contacts("trg_1", "run_1", 1) == (["ctc_c"], False)
    assert mine.finish_batch("trg_1", "run_1", 0, {"contacts": 2, "applied": 2}, AT)
    assert not mine.finish_batch("trg_1", "run_1", 0, {"contacts": 2, "applied": 2}, AT)
    assert not mine.finish_run_if_complete("trg_1", "run_1", AT)
    assert mine.finish_batch("trg_1", "run_1", 1, {"contacts": 1, "skipped": 1}, AT)
    assert mine.finish_run_if_complete("trg_1", "run_1", AT) and not mine.finish_run_if_complete("trg_1", "run_1", AT)
    done = mine.get_run("trg_1", "run_1")
    assert (done.batches_total, done.batches_done, done.finished_at) == (2, 2, AT)
    assert done.counters == {"contacts": 3, "applied": 2, "skipped": 1, "stopped": 0, "failed": 0}
    mine.start_run("trg_1", Run("run_2", "manual", AT, None, None, 0), [])
    listed, position = mine.runs_page("trg_1", 1, None)
    while position is not None:
        more, position = mine.runs_page("trg_1", 1, position)
        listed += more
    assert [r.id for r in listed] == ["run_2", "run_1"]


def test_a_firing_is_recorded_once_with_its_counts_in_the_days_run(trigger_repos):
    mine, _ = trigger_repos
    contact_id = contact_id_for(9)
    day = Run("run_events", "events", AT, None, None, 0)
    assert not mine.has_fired(contact_id, "key_1")
    assert mine.record_firing("trg_1", contact_id, "key_1", day, {"contacts": 1, "applied": 1}, AT)
    assert not mine.record_firing("trg_1", contact_id, "key_1", day, {"contacts": 1, "applied": 1}, AT)
    assert mine.record_firing("trg_1", contact_id, "key_2", day, {"contacts": 1, "stopped": 1}, AT)
    assert mine.has_fired(contact_id, "key_1")
    counted = mine.get_run("trg_1", "run_events")
    assert (counted.counters["contacts"], counted.counters["applied"], counted.counters["stopped"]) == (2, 1, 1)
    assert counted.batches_total is None and not mine.finish_run_if_complete("trg_1", "run_events", AT)


def test_a_firing_email_is_claimed_once_and_a_released_one_can_be_claimed_again(trigger_repos):
    mine, _ = trigger_repos
    contact_id = contact_id_for(9)
    assert mine.claim_mail(contact_id, "key_1") and not mine.claim_mail(contact_id, "key_1")
    mine.release_mail(contact_id, "key_1")
    assert mine.claim_mail(contact_id, "key_1")
    mine.settle_mail(contact_id, "key_1", "sent", "msg-1", None)
    assert not mine.claim_mail(contact_id, "key_1")
    mine.give_announcement(contact_id, "ann_1", AT)
    mine.give_announcement(contact_id, "ann_1", AT)
    assert mine.personal_announcements(contact_id, 9) == {"ann_1"}
    assert mine.personal_announcements(contact_id_for(10), 10) == set()


# --- ContactRepository and ChangeOutbox ----------------------------------------------------------------------


@pytest.fixture(params=ADAPTERS)
def contact_repos(request):
    """Two tenants' contact repositories and the outbox their writes put messages into."""
    if request.param == "dynamodb":
        return ContactTable(new_tenant()), ContactTable(new_tenant()), OutboxTable()
    outbox = InMemoryOutbox()
    return InMemoryContacts(new_tenant(), outbox), InMemoryContacts(new_tenant(), outbox), outbox


def _message(tenant_id: str, contact: Contact, at: str = AT) -> dict[str, Any]:
    return {"id": f"chg_{uuid.uuid4().hex[:8]}", "tenant_id": tenant_id, "contact_id": contact.id, "at": at}


def _pending(outbox, tenant_id: str) -> list[list[str]]:
    """The ids of the tenant's pending messages, write by write."""
    every = outbox.pending("9999", limit=10_000)  # other tests' are pending in the shared table too
    return sorted(sorted(m["id"] for m in group) for group in every if group[0]["tenant_id"] == tenant_id)


def test_a_contact_write_moves_its_guards_and_its_messages_all_or_nothing(contact_repos):
    mine, theirs, outbox = contact_repos
    first = mine.allocate_ordinals(2)
    assert mine.allocate_ordinals(1) == first + 2  # never handed out twice
    ada, bob = _contact(first, "vip"), _contact(first + 1)
    created = [_message(mine.tenant_id, ada), _message(mine.tenant_id, bob)]
    mine.write([(None, ada), (None, bob)], created)
    assert mine.get_contact(ada.id) == ada and theirs.get_contact(ada.id) is None
    assert mine.find_contact_id(external_id=ada.external_id) == ada.id
    assert mine.find_contact_id(email=bob.email) == bob.id and theirs.find_contact_id(email=bob.email) is None
    assert _pending(outbox, mine.tenant_id) == [sorted(m["id"] for m in created)]  # the write's messages together

    clash = replace(bob, email=ada.email, version=2)
    renamed = replace(ada, first_name="Ada", version=2)
    with pytest.raises(TakenIdentifier) as taken:
        mine.write([(ada, renamed), (bob, clash)], [_message(mine.tenant_id, bob)])
    assert taken.value.field == "email"
    with pytest.raises(StaleContact):
        mine.write([(replace(ada, version=7), renamed)])
    assert mine.get_contact(ada.id) == ada and mine.get_contact(bob.id) == bob  # neither batch left a trace
    assert len(_pending(outbox, mine.tenant_id)) == 1

    mine.write([(bob, None)])
    assert mine.get_contact(bob.id) is None and mine.find_contact_id(email=bob.email) is None
    took = replace(ada, email=bob.email, version=2)
    mine.write([(ada, took)])  # a deleted contact's address is free again, and the old one is released
    assert mine.find_contact_ids_many(external_ids=[ada.external_id, "nobody"], emails=[bob.email, ada.email]) == (
        {ada.external_id: ada.id},
        {bob.email: ada.id},
    )
    assert mine.tag_ordinals("vip") == {first} and mine.count_tag(EVERYONE) == 1
    outbox.forget([created])
    assert _pending(outbox, mine.tenant_id) == []


def test_transaction_batches_hold_every_change_once_shard_by_shard_and_each_fits_one_write(contact_repos):
    mine, _, outbox = contact_repos
    first = mine.allocate_ordinals(130)
    people = [_contact(first + i, "vip", "local") for i in range(130)]
    batches = mine.transaction_batches([(None, c) for c in people])
    assert len(batches) > 1 and sorted(after.id for batch in batches for _, after in batch) == sorted(
        c.id for c in people
    )
    shards = [shard_of(after.ordinal) for batch in batches for _, after in batch]
    assert shards == sorted(shards)  # so a write names few shards, and leaves few marks
    for batch in batches:
        mine.write(batch, [_message(mine.tenant_id, after) for _, after in batch])
    assert mine.count_tag("local") == 130 and len(mine.get_contacts(c.id for c in people)) == 130
    assert sorted(len(group) for group in _pending(outbox, mine.tenant_id)) == sorted(len(b) for b in batches)


def test_contacts_page_by_shard_and_by_group_and_their_events_page_in_id_order(contact_repos):
    mine, theirs, _ = contact_repos
    people = [_contact(o) for o in (1, 2, 1 + SHARDS, 5)]
    people[1], people[3] = replace(people[1], group="grp_a"), replace(people[3], group="grp_a")
    mine.write([(None, c) for c in people])
    seen, position = [], None
    while True:
        page, position = mine.page_of_shards(3, position)
        seen += page
        if position is None:
            break
    assert sorted(c.id for c in seen) == sorted(c.id for c in people) and len(seen) == 4
    group, position = mine.page_of_group("grp_a", 1, None)
    rest, last = mine.page_of_group("grp_a", 5, position)
    assert sorted(c.id for c in group + rest) == sorted([people[1].id, people[3].id]) and last is None
    assert theirs.page_of_shards(10, None) == ([], None)

    mine.put_events_many([(people[0], [PURCHASE, VISIT], [2_000_000_000] * 2)])
    mine.put_events_many([(people[0], [PURCHASE], [2_000_000_000])])  # the same id overwrites itself
    events, position = mine.events_of(people[0], 1, None)
    more, _ = mine.events_of(people[0], 5, position)
    assert [e["id"] for e in events + more] == ["evt_a", "evt_b"] and more == [PURCHASE]
    assert theirs.events_of(people[0], 5, None)[0] == []
    assert mine.delete_contact_records(people[0]) == 2 and mine.events_of(people[0], 5, None)[0] == []


def test_every_write_marks_its_contacts_dirty_until_the_marks_read_are_forgotten(contact_repos):
    mine, theirs, _ = contact_repos
    ada, bob = _contact(1), _contact(1 + SHARDS)
    mine.write([(None, ada), (None, bob)])
    marks = mine.dirty(1)
    assert set(marks) == {ada.id, bob.id} and theirs.dirty(1) == {}
    assert len(marks[ada.id].marks) == 1 and marks[ada.id] == marks[bob.id]  # one mark for the write's shard
    renamed = replace(ada, first_name="Ada", version=2)
    mine.write([(ada, renamed)])  # written again after the marks were read
    assert mine.dirty(1)[ada.id].marks > marks[ada.id].marks  # a new mark: the first one never changes
    mine.forget_dirty(1, marks)
    assert set(mine.dirty(1)) == {ada.id}  # bob's mark is gone, ada's second write keeps her dirty
    mine.forget_dirty(1, mine.dirty(1))
    mine.put_events_many([(bob, [PURCHASE], [2_000_000_000])])
    mine.write([(renamed, None)])
    assert set(mine.dirty(1)) == {ada.id, bob.id}  # events and deletes mark too
    found, events = mine.read_contacts([ada.id, bob.id, "ctc_bogus"])
    assert found == [bob] and events == {bob.id: [PURCHASE]}
    assert mine.read_contacts([bob.id], with_events=False) == ([bob], {})
    mine.forget_dirty(1, mine.dirty(1))
    carol = _contact(1 + 2 * SHARDS)
    mine.write([(None, carol)])
    mine.forget_dirty(1, mine.dirty(1))
    mine.put_events_many([(bob, [VISIT], [2_000_000_000]), (carol, [PURCHASE, VISIT], [2_000_000_000] * 2)])
    dirty = mine.dirty(1)
    assert set(dirty) == {bob.id, carol.id} and dirty[bob.id] == dirty[carol.id]  # one mark, however many events
    assert len(mine.dirty(1, limit=1)) >= 1  # reading stops once the limit is known
    assert mine.read_contacts([bob.id, carol.id])[1] == {bob.id: [VISIT, PURCHASE], carol.id: [VISIT, PURCHASE]}


@pytest.fixture(params=ADAPTERS)
def snapshot_stores(request):
    if request.param == "dynamodb":
        return SnapshotBucket(new_tenant()), SnapshotBucket(new_tenant())
    return InMemorySnapshots(new_tenant()), InMemorySnapshots(new_tenant())


def test_a_snapshot_is_published_only_over_the_manifest_read_and_replaces_the_old_image(snapshot_stores):
    mine, theirs = snapshot_stores
    assert mine.manifest(3) is None
    assert mine.publish(3, b"first", None, AT, 2)
    first = mine.manifest(3)
    assert (first.version, first.contacts, first.size_bytes, first.built_at) == (1, 2, 5, AT)
    assert mine.load(first) == b"first" and theirs.manifest(3) is None and mine.manifest(4) is None
    assert not mine.publish(3, b"stale", None, AT, 1)  # another publish came first
    assert mine.publish(3, b"second", first, AT, 3)
    second = mine.manifest(3)
    assert second.version == 2 and mine.load(second) == b"second"
    assert mine.load(first) is None  # the replaced image is gone
    assert not mine.publish(3, b"stale", first, AT, 1) and mine.load(mine.manifest(3)) == b"second"


def test_a_compaction_is_asked_for_once_in_a_window_or_until_published(snapshot_stores):
    mine, theirs = snapshot_stores
    assert mine.request_compaction(2, "2026-11-30T10:00:00.000Z", "2026-11-30T09:59:00.000Z")
    assert not mine.request_compaction(2, "2026-11-30T10:00:30.000Z", "2026-11-30T09:59:30.000Z")
    assert theirs.request_compaction(2, "2026-11-30T10:00:30.000Z", "2026-11-30T09:59:30.000Z")
    assert mine.request_compaction(2, "2026-11-30T10:01:30.000Z", "2026-11-30T10:00:30.000Z")
    assert mine.manifest(2).key is None  # asked for, not yet published
    assert mine.publish(2, b"image", mine.manifest(2), AT, 1)
    assert mine.manifest(2).requested_at is None  # answered
    assert mine.request_compaction(2, "2026-11-30T10:01:40.000Z", "2026-11-30T10:00:40.000Z")  # so asked again


def test_manifests_are_read_together_and_only_the_tenants_own(snapshot_stores):
    mine, theirs = snapshot_stores
    assert mine.manifests_of(range(64)) == {}
    assert mine.publish(5, b"image", None, AT, 1)
    assert mine.request_compaction(9, "2026-11-30T10:00:00.000Z", "2026-11-30T09:59:00.000Z")
    assert theirs.request_compaction(7, "2026-11-30T10:00:00.000Z", "2026-11-30T09:59:00.000Z")
    found = mine.manifests_of(range(64))
    assert found == {5: mine.manifest(5), 9: mine.manifest(9)}
    assert found[9].requested_at == "2026-11-30T10:00:00.000Z" and mine.manifests_of([5]) == {5: found[5]}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_outbox_gives_back_what_is_older_than_asked_until_forgotten(adapter):
    outbox = OutboxTable() if adapter == "dynamodb" else InMemoryOutbox()
    tenant_id = new_tenant()
    old = _message(tenant_id, _contact(3), "2026-11-30T09:00:00Z")
    young = _message(tenant_id, _contact(4), "2026-11-30T11:00:00Z")
    outbox.put([old])
    late = [young, _message(tenant_id, _contact(5), "2026-11-30T09:00:00Z")]
    outbox.put(late)
    pending = [group for group in outbox.pending("2026-11-30T10:00:00Z") if group[0]["tenant_id"] == tenant_id]
    assert [[m["id"] for m in group] for group in pending] == [[old["id"]]]  # a group is as old as its first
    outbox.forget([[_message(tenant_id, _contact(6))]])  # an unknown group is ignored
    assert len(_pending(outbox, tenant_id)) == 2
    outbox.forget(pending)
    assert _pending(outbox, tenant_id) == [sorted(m["id"] for m in late)]


# --- CampaignRepository and SendLedger -----------------------------------------------------------------------


def a_campaign(campaign_id: str = "cmp_1", **fields: Any) -> Campaign:
    base = Campaign(
        id=campaign_id,
        name="Spring",
        sender="news@example.com",
        subject="Hello {{ contact.first_name }}",
        html="<p>Hi</p>",
        text=None,
        segments=["seg_1"],
        exclude_segments=[],
        send_at=None,
        status="draft",
        version=1,
        created_at=AT,
        updated_at=AT,
    )
    return replace(base, **fields)


@pytest.fixture(params=ADAPTERS)
def sending_side(request):
    """One tenant's campaigns, its send ledger, and the contacts and suppressions the ledger reads."""
    tenant_id = new_tenant()
    if request.param == "dynamodb":
        return CampaignTable(tenant_id), SendTable(tenant_id), ContactTable(tenant_id), SuppressionTable(tenant_id)
    campaigns, contacts = InMemoryCampaigns(tenant_id), InMemoryContacts(tenant_id)
    suppressions = InMemorySuppressions(tenant_id)
    return campaigns, InMemorySends(campaigns, contacts, suppressions), contacts, suppressions


def test_a_campaign_is_edited_deleted_and_moved_only_from_what_was_read(sending_side):
    campaigns, _, _, _ = sending_side
    campaigns.create(a_campaign())
    campaigns.create(a_campaign("cmp_2", name="Autumn"))
    assert campaigns.get("cmp_1") == a_campaign()
    first, position = campaigns.page(1, None)
    rest, last = campaigns.page(5, position)
    assert [c.id for c in first + rest] == ["cmp_1", "cmp_2"] and last is None
    assert [c.id for c in campaigns.all_campaigns()] == ["cmp_1", "cmp_2"]

    edited = a_campaign(subject="New", version=2, send_at="2026-12-01T10:00:00Z", status="scheduled")
    campaigns.save_content(a_campaign(), edited)
    assert campaigns.get("cmp_1") == edited
    with pytest.raises(StaleCampaign):
        campaigns.save_content(a_campaign(), a_campaign(subject="Lost", version=2))
    with pytest.raises(StaleCampaign):
        campaigns.delete(a_campaign())  # it is scheduled now
    assert not campaigns.change_status("cmp_1", {"draft"}, "sending")
    assert campaigns.change_status("cmp_1", {"scheduled"}, "sending", started_at=AT, shards_done=0, audience=0)
    moved = campaigns.get("cmp_1")
    assert (moved.status, moved.status_reason, moved.started_at) == ("sending", None, AT)
    assert campaigns.change_status("cmp_1", {"sending"}, "paused", "paused by a user")
    assert campaigns.get("cmp_1").status_reason == "paused by a user"
    assert not campaigns.finish_if_complete("cmp_1", SHARDS, "sent", AT)  # paused, and no shard built
    campaigns.delete(campaigns.get("cmp_2"))
    assert campaigns.get("cmp_2") is None


def test_an_ab_test_finishes_only_once_its_winner_is_recorded(sending_side):
    campaigns, sends, _, _ = sending_side
    _sending(campaigns)
    for shard in range(SHARDS):  # every audience built, nobody in it: every batch (none) is done
        assert sends.acquire_build("cmp_1", shard, "build", 0, 60_000) == "acquired"
        assert sends.finish_build("cmp_1", shard, "build", 0, 0)
    assert not campaigns.finish_if_complete("cmp_1", SHARDS, "sent", AT, needs_winner=True)
    assert campaigns.get("cmp_1").status == "sending"
    assert campaigns.record_winner("cmp_1", "B", AT)
    assert campaigns.finish_if_complete("cmp_1", SHARDS, "sent", AT, needs_winner=True)
    assert campaigns.get("cmp_1").status == "sent"


C1, C2, C3, C7, C9 = (contact_id_for(n) for n in (1, 2, 3, 7, 9))


def _sending(campaigns, campaign_id: str = "cmp_1") -> None:
    campaigns.create(a_campaign(campaign_id))
    fields = {"started_at": AT, "shards_done": 0, "batches_total": 0, "batches_done": 0, "audience": 0}
    assert campaigns.change_status(campaign_id, {"draft"}, "sending", **fields)


def test_an_audience_is_built_under_a_lease_once_and_counted_once(sending_side):
    campaigns, sends, _, _ = sending_side
    _sending(campaigns)
    assert sends.acquire_build("cmp_1", 0, "build_a", 1_000, 500) == "acquired"
    assert sends.acquire_build("cmp_1", 0, "build_b", 1_200, 500) == "busy"
    assert sends.acquire_build("cmp_1", 0, "build_b", 1_600, 500) == "acquired"  # build_a's lease ran out
    sends.write_batches("cmp_1", 0, "build_a", [[(C1, "a@x.com")], [(C2, "b@x.com")], [(C3, "c@x.com")]])
    sends.write_batches("cmp_1", 0, "build_b", [[(C1, "a@x.com"), (C2, "b@x.com")]])  # replaces what a left
    assert not sends.finish_build("cmp_1", 0, "build_a", 3, 3)
    assert sends.finish_build("cmp_1", 0, "build_b", 1, 2)
    assert not sends.finish_build("cmp_1", 0, "build_b", 1, 2)
    assert sends.acquire_build("cmp_1", 0, "build_c", 9_000, 500) == "built"
    assert sends.batches_of("cmp_1") == sends.batches_of("cmp_1", 0)
    assert [(b.recipients, b.done) for b in sends.batches_of("cmp_1")] == [([(C1, "a@x.com"), (C2, "b@x.com")], False)]
    assert sends.batches_of("cmp_1", 1) == []
    campaign = campaigns.get("cmp_1")
    assert (campaign.shards_done, campaign.batches_total, campaign.audience) == (1, 1, 2)


def test_a_recipient_is_claimed_once_settled_once_and_counted_once(sending_side):
    campaigns, sends, _, _ = sending_side
    _sending(campaigns)
    sends.write_batches("cmp_1", 0, "b", [[(C1, "a@x.com"), (C2, "b@x.com"), (C3, "c@x.com")]])
    batch = sends.batches_of("cmp_1")[0].key
    claims = [Claim(C1, "a@x.com", CLAIMED), Claim(C2, "b@x.com", CLAIMED), Claim(C3, "c@x.com", "suppressed")]
    ledger = Ledger(C1, 0, [1_700_000_000])
    assert sends.claim("cmp_1", "m1", claims, [ledger], AT) == claims
    assert sends.claim("cmp_1", "m2", claims[1:], [], AT) == []  # a duplicate delivery gets nobody
    with pytest.raises(LedgerMoved):
        sends.claim("cmp_1", "m3", [Claim(C9, "z@x.com", CLAIMED)], [Ledger(C9, 4, [])], AT)
    sends.settle(
        "cmp_1", "m1", [Outcome(C1, "a@x.com", DELIVERED, "ses-1"), Outcome(C2, "b@x.com", RELEASED)], AT, None
    )
    assert [c.contact_id for c in sends.claim("cmp_1", "m4", claims[1:2], [], AT, continuing=True)] == [C2]
    sends.settle("cmp_1", "m4", [Outcome(C2, "b@x.com", DELIVERED, "ses-2")], AT, batch)
    sends.settle("cmp_1", "m4", [], AT, batch)  # the batch is done once
    assert sends.batches_of("cmp_1")[0].done
    records = {r.contact_id: r for r in sends.all_send_records("cmp_1")}
    assert {c: r.state for c, r in records.items()} == {C1: "sent", C2: "sent", C3: "suppressed"}
    assert records[C1].message_id == "ses-1"
    sent, _ = sends.send_records("cmp_1", "sent", 5, None)
    assert sorted(r.contact_id for r in sent) == [C1, C2]
    assert sends.mark_feedback("cmp_1", C1, "bounced") and not sends.mark_feedback("cmp_1", C1, "bounced")
    assert not sends.mark_feedback("cmp_1", C3, "complained")
    counters = campaigns.get("cmp_1").counters
    assert (counters["claimed"], counters["sent"], counters["released"]) == (3, 2, 1)
    assert (counters["suppressed"], counters["bounced"], campaigns.get("cmp_1").batches_done) == (1, 1, 1)
    assert campaigns.change_status("cmp_1", {"sending"}, "paused")
    with pytest.raises(NotSending):
        sends.claim("cmp_1", "m5", [Claim(C7, "q@x.com", CLAIMED)], [], AT)


def test_deliveries_opens_and_clicks_count_once_per_event_and_once_per_recipient(sending_side):
    campaigns, sends, _, _ = sending_side
    _sending(campaigns)
    sends.write_batches("cmp_1", 0, "b", [[(C1, "a@x.com"), (C2, "b@x.com")]])
    claims = [Claim(C1, "a@x.com", CLAIMED), Claim(C2, "b@x.com", CLAIMED)]
    sends.claim("cmp_1", "m1", claims, [], AT)
    sends.settle("cmp_1", "m1", [Outcome(C1, "a@x.com", DELIVERED, "s1"), Outcome(C2, "b@x.com", DELIVERED, "s2")],
                 AT, None)  # fmt: skip
    opened_2, opened_1 = seen(C1, "opened", "open-2", "10:02"), seen(C1, "opened", "open-1", "10:01")
    first = [opened_2, opened_2, seen(C1, "clicked", "click-1", "10:03"), seen(C2, "delivered", "delivery-2", "10:00")]
    assert sends.record_engagements("cmp_1", first) == 3  # the same event twice in one batch counts once
    later = [opened_2, opened_1, seen(C1, "delivered", "delivery-1", "10:00"), seen(C9, "opened", "open-9", "10:00")]
    assert sends.record_engagements("cmp_1", later) == 3  # an earlier open arriving later; C9 has no record: total
    assert sends.record_engagements("cmp_1", first + later) == 0  # all again
    counters = campaigns.get("cmp_1").counters
    assert {name: counters[name] for name in ("delivered", "opened", "clicked", "opens", "clicks")} == {
        "delivered": 2, "opened": 1, "clicked": 1, "opens": 3, "clicks": 1,
    }  # fmt: skip
    record = next(r for r in sends.all_send_records("cmp_1") if r.contact_id == C1)
    assert (record.delivered_at, record.opened_at, record.clicked_at) == (
        "2026-11-30T10:00:00.000Z", "2026-11-30T10:01:00.000Z", "2026-11-30T10:03:00.000Z",
    )  # fmt: skip
    assert record.state == "sent"


def seen(contact_id: str, kind: str, key: str, clock: str) -> RecipientEvent:
    return RecipientEvent(contact_id, kind, key, f"2026-11-30T{clock}:00.000Z")


def test_engagements_a_concurrent_worker_counted_after_the_read_are_counted_once(monkeypatch):
    """The batch's read missed what another worker wrote meanwhile: the transaction is cancelled, and each event
    is decided on its own; a recipient with more events than one transaction takes is decided the same way."""
    tenant_id = new_tenant()
    campaigns, sends = CampaignTable(tenant_id), SendTable(tenant_id)
    _sending(campaigns)
    sends.write_batches("cmp_1", 0, "b", [[(C1, "a@x.com")]])
    sends.claim("cmp_1", "m1", [Claim(C1, "a@x.com", CLAIMED)], [], AT)
    sends.settle("cmp_1", "m1", [Outcome(C1, "a@x.com", DELIVERED, "s1")], AT, None)
    events = [seen(C1, "opened", f"open-{n}", f"10:{n:02d}") for n in range(3)]
    assert sends.record_engagements("cmp_1", events) == 3
    monkeypatch.setattr(sends_storage, "batch_get_raw", lambda keys: [])  # a read from before the other worker
    assert sends.record_engagements("cmp_1", [*events, seen(C1, "clicked", "click-1", "10:05")]) == 1
    many = [seen(C1, "clicked", f"click-{n}", f"11:{n % 60:02d}") for n in range(120)]  # click-1 again among them
    assert sends.record_engagements("cmp_1", many) == 119
    counters = campaigns.get("cmp_1").counters
    assert {name: counters[name] for name in ("opened", "clicked", "opens", "clicks")} == {
        "opened": 1, "clicked": 1, "opens": 3, "clicks": 120,
    }  # fmt: skip
    (record,) = sends.all_send_records("cmp_1")
    assert (record.opened_at, record.clicked_at) == ("2026-11-30T10:00:00.000Z", "2026-11-30T10:05:00.000Z")


def test_recipient_facts_bring_contacts_suppressions_and_ledgers_together(sending_side):
    campaigns, sends, contacts, suppressions = sending_side
    _sending(campaigns)
    ada, bob = _contact(1), _contact(2)
    contacts.write([(None, ada), (None, bob)])
    suppressions.suppress(Suppression(bob.email, "bounce", AT))
    sends.claim("cmp_1", "m1", [Claim(ada.id, ada.email, CLAIMED)], [Ledger(ada.id, 0, [1_700_000_000])], AT)
    facts = sends.recipient_facts([(ada.id, ada.email), (bob.id, bob.email), (contact_id_for(9), "n@x.com")])
    assert facts.contacts == {ada.id: ada, bob.id: bob}
    assert facts.suppressions == {bob.email: "bounce"}
    assert facts.ledgers == {ada.id: Ledger(ada.id, 1, [1_700_000_000])}


def test_the_send_lane_hands_out_slots_in_order_and_never_too_far_ahead(sending_side):
    _, sends, _, _ = sending_side
    now = 1_800_000_000_000
    assert sends.reserve_send_slots(10, 100, now, max_ahead_ms=500) == now  # 10 at 100/s: 100 ms
    assert sends.reserve_send_slots(20, 100, now + 50, max_ahead_ms=500) == now + 100
    assert sends.reserve_send_slots(50, 100, now + 50, max_ahead_ms=500) == now + 300
    assert sends.reserve_send_slots(5, 100, now + 50, max_ahead_ms=500) is None
    assert sends.reserve_send_slots(1, 100, now + 5_000, max_ahead_ms=500) == now + 5_000


# --- webhooks ------------------------------------------------------------------------------------------


@pytest.fixture(params=ADAPTERS)
def webhook_store(request):
    tenant_id = new_tenant()
    return WebhookTable(tenant_id) if request.param == "dynamodb" else InMemoryWebhooks(tenant_id)


def _hook(webhook_id: str, **fields: Any) -> Webhook:
    base = Webhook(webhook_id, "https://a.example.com/h", ["email.*"], "CRM", "whsec_abc", "wsk_1", "enabled", 1,
                   AT, AT)  # fmt: skip
    return replace(base, **fields)


def _line(delivery_id: str, created_at: str, **fields: Any) -> DeliveryRecord:
    base = DeliveryRecord(delivery_id, f"ev-{delivery_id}", "email.opened", created_at, "retrying", 1, created_at)
    return replace(base, **fields)


def test_webhooks_are_kept_with_their_secret_changed_from_what_was_read_and_deleted_with_their_log(webhook_store):
    store = webhook_store
    store.create(_hook("whk_1"))
    store.create(_hook("whk_2", events=["*"]))
    assert store.get("whk_1") == _hook("whk_1") and store.get("whk_9") is None
    assert [w.id for w in store.all_webhooks()] == ["whk_1", "whk_2"]
    changed = _hook("whk_1", status="disabled", disabled_reason="5 failed", failures_in_a_row=5, version=2)
    store.save(_hook("whk_1"), changed)
    assert store.get("whk_1") == changed
    with pytest.raises(StaleWebhook):
        store.save(_hook("whk_1"), _hook("whk_1", version=2))
    store.log_delivery("whk_1", _line("d1", "2026-11-30T10:00:00.000Z"))
    store.log_delivery("whk_1", _line("d2", "2026-11-30T11:00:00.000Z"))
    store.log_delivery("whk_1", _line("d1", "2026-11-30T10:00:00.000Z", status="delivered", attempts=3))  # replaces
    first, position = store.deliveries("whk_1", 1, None)
    rest, end = store.deliveries("whk_1", 5, position)
    assert [(r.id, r.status, r.attempts) for r in first + rest] == [("d2", "retrying", 1), ("d1", "delivered", 3)]
    assert end is None and store.deliveries("whk_2", 5, None) == ([], None)
    store.delete(changed)
    assert store.get("whk_1") is None and store.deliveries("whk_1", 5, None) == ([], None)
    assert [w.id for w in store.all_webhooks()] == ["whk_2"]


# --- JourneyRepository ---------------------------------------------------------------------------------------


@pytest.fixture(params=ADAPTERS)
def journey_repos(request):
    """Two tenants' journey repositories and, for the first, its waits over at a moment (the due-time index)."""
    if request.param == "dynamodb":
        mine, theirs = JourneyTable(new_tenant()), JourneyTable(new_tenant())
        return mine, theirs, lambda before: [due for due in due_positions(before) if due[0] == mine.tenant_id]
    mine, theirs = InMemoryJourneys(new_tenant()), InMemoryJourneys(new_tenant())
    return mine, theirs, mine.due


def a_journey(journey_id: str = "jrn_1", **fields: Any) -> Journey:
    base = Journey(
        id=journey_id,
        name="Welcome",
        status="running",
        entry={"type": "contact.created", "segments": []},
        reentry={"mode": "never"},
        exit={"tag": "vip"},
        holdout_percent=10,
        goal={"event": "purchase", "within": "P14D"},
        start="wait",
        steps={"wait": {"type": "wait", "duration": "P1D", "next": None}},
        version=1,
        revision=1,
        created_at=AT,
        updated_at=AT,
    )
    return replace(base, **fields)


def a_position(contact_id: str, **fields: Any) -> Position:
    base = Position("jrn_1", contact_id, 1, 1, "active", "wait", AT, AT, "contact.created", revision=1)
    return replace(base, **fields)


def test_a_journey_keeps_every_version_and_changes_only_from_the_revision_read(journey_repos):
    mine, theirs, _ = journey_repos
    first = a_journey()
    mine.create(first)
    assert mine.get("jrn_1") == first and theirs.get("jrn_1") is None and theirs.all_journeys() == []
    steps = {"tag": {"type": "add_tag", "tag": "vip", "next": None}}
    second = replace(first, name="Welcome v2", start="tag", steps=steps, version=2, revision=2, moved_to=2)
    mine.save(first, second)
    with pytest.raises(StaleJourney):
        mine.save(first, replace(first, name="Lost", revision=2))
    paused = replace(second, status="paused", status_reason="segment deleted", revision=3)
    mine.save(second, paused)
    assert mine.get("jrn_1") == paused
    old = mine.definition("jrn_1", 1)
    assert (old.version, old.name, old.start, old.steps) == (1, "Welcome", "wait", first.steps)
    assert old.status == "paused"  # the status is the journey's, whatever the version
    assert mine.definition("jrn_1", 2) == paused and mine.definition("jrn_1", 9) is None
    assert theirs.definition("jrn_1", 1) is None
    mine.create(a_journey("jrn_2"))
    listed, cursor = mine.page(1, None)
    while cursor is not None:
        more, cursor = mine.page(1, cursor)
        listed += more
    assert [j.id for j in listed] == ["jrn_1", "jrn_2"] == [j.id for j in mine.all_journeys()]
    with pytest.raises(StaleJourney):
        mine.delete(second)
    mine.delete(paused)
    assert mine.get("jrn_1") is None and mine.definition("jrn_1", 1) is None
    assert mine.counters("jrn_1") == ({name: 0 for name in mine.counters("jrn_2")[0]}, {})


def test_a_position_moves_only_from_the_one_read_with_its_counters(journey_repos):
    mine, theirs, _ = journey_repos
    mine.create(a_journey())
    contact_id = contact_id_for(7)
    entered = a_position(contact_id)
    assert mine.move(None, entered, {("wait", "entered"): 1}, {"entered": 1})
    assert not mine.move(None, entered, {("wait", "entered"): 1}, {"entered": 1})  # a redelivered entry
    waiting = replace(entered, state="waiting", due_at="2026-12-01T10:00:00.000Z", revision=2)
    assert mine.move(entered, waiting, {}, {})
    assert not mine.move(entered, replace(entered, state="done", revision=2), {("wait", "completed"): 1}, {})
    assert mine.position("jrn_1", contact_id) == waiting and theirs.position("jrn_1", contact_id) is None
    assert mine.positions("jrn_1", [contact_id, contact_id_for(99), contact_id]) == {contact_id: waiting}
    assert theirs.positions("jrn_1", [contact_id]) == {}
    other = contact_id_for(8 + SHARDS)  # another contact in another shard: its counters add up with the first's
    converted = {("wait", "entered"): 1, ("wait", "converted"): 1}
    assert mine.move(None, a_position(other), converted, {"entered": 1, "converted": 1})
    totals, steps = mine.counters("jrn_1")
    assert (totals["entered"], totals["converted"], totals["holdout_entered"]) == (2, 1, 0)
    assert steps == {"wait": {"entered": 2, "completed": 0, "exited": 0, "converted": 1}}
    assert theirs.counters("jrn_1")[1] == {}
    mine.drop(waiting)
    assert mine.position("jrn_1", contact_id) is None


def test_waits_are_due_once_their_time_has_come_and_leave_the_index_when_they_end(journey_repos):
    mine, _, due = journey_repos
    mine.create(a_journey())
    soon, later = contact_id_for(3), contact_id_for(4)
    for contact_id, at in ((soon, "2026-12-01T10:00:00.000Z"), (later, "2026-12-04T10:00:00.000Z")):
        mine.move(None, a_position(contact_id, state="waiting", due_at=at), {}, {})
    assert due("2026-12-01T09:59:59.999Z") == []
    assert due("2026-12-01T10:00:00.000Z") == [(mine.tenant_id, "jrn_1", soon)]
    assert sorted(due("2026-12-05T00:00:00.000Z")) == sorted([(mine.tenant_id, "jrn_1", c) for c in (soon, later)])
    waiting = mine.position("jrn_1", soon)
    mine.move(waiting, replace(waiting, state="done", step=None, due_at=None, revision=2), {}, {})
    assert due("2026-12-05T00:00:00.000Z") == [(mine.tenant_id, "jrn_1", later)]


def test_a_running_schedule_journey_is_due_at_its_next_run_and_moves_on_once(journey_repos):
    mine, _, _ = journey_repos
    if isinstance(mine, JourneyTable):
        scheduled = lambda before: [due for due in due_scheduled(before) if due[0] == mine.tenant_id]  # noqa: E731
    else:
        scheduled = mine.due_scheduled
    entry = {"type": "schedule", "expression": "rate(1 day)", "segments": ["seg_1"]}
    weekly = a_journey(entry=entry, next_run_at="2026-12-01T10:00:00.000Z")
    mine.create(weekly)
    mine.create(a_journey("jrn_2"))  # no schedule: never due
    assert scheduled("2026-12-01T09:59:59.999Z") == []
    assert scheduled("2026-12-01T10:00:00.000Z") == [(mine.tenant_id, "jrn_1")]
    assert mine.advance_schedule(weekly, "2026-12-02T10:00:00.000Z")
    assert not mine.advance_schedule(weekly, "2026-12-03T10:00:00.000Z")  # another worker moved it on
    moved = mine.get("jrn_1")
    assert (moved.next_run_at, moved.revision) == ("2026-12-02T10:00:00.000Z", 2)
    assert scheduled("2026-12-01T12:00:00.000Z") == []
    mine.save(moved, replace(moved, status="paused", revision=3))
    assert scheduled("2026-12-09T00:00:00.000Z") == []  # a paused journey is not due
