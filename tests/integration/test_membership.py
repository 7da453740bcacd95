"""Membership at scale: the tag index plan, real-time updates, interleaving with evaluations, time passing."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from chalicelib.composition import tenant_context
from chalicelib.domain.clock import system_clock
from chalicelib.domain.contacts import ordinal_of, shard_of
from chalicelib.resources import CONTACT_CHANGES_QUEUE, JOBS_QUEUE, MEMBERSHIP_EVENTS_QUEUE
from chalicelib.services.segments import refresh_time_dependent
from chalicelib.services.shards import SnapshotShards
from chalicelib.storage import segments as segment_store
from chalicelib.storage.contacts import ContactTable
from tests.integration.test_segments_api import ago, member_ids, ready, shop  # noqa: F401 - shop is a fixture
from tests.support.population import many_contacts
from tests.support.queues import deliver, drain, take_changes, take_messages

APPLY = "apply_contact_changes"


def contact_id(api, tenant, external_id: str) -> str:
    return api.get(f"/contacts/{external_id}", key=tenant.admin_key).json["id"]


def ids_by_external(api, tenant) -> dict[str, str]:
    items = api.get("/contacts?limit=100", key=tenant.admin_key).json["items"]
    return {c["id"]: c["external_id"] for c in items}


def announced(events, names, people) -> list[tuple[str, str, str]]:
    return sorted((e["type"], names[e["segment_id"]], people.get(e["contact_id"], e["contact_id"])) for e in events)


def segment_state(api, tenant, segment_id) -> dict:
    return api.get(f"/segments/{segment_id}", key=tenant.viewer_key).json


def test_real_time_changes_delivered_twice_move_members_once_and_announce_each_transition(api, app, shop):  # noqa: F811
    vip = ready(api, app, shop, {"tag": "vip"}, "VIP")
    spender = ready(
        api,
        app,
        shop,
        {"event": "purchase", "within": "7d", "agg": "sum", "field": "amount", "op": "gt", "value": 100},
        "Spent over $100 this week",
    )
    mixer = ready(api, app, shop, {"any": [{"segment": vip["id"]}, {"segment": spender["id"]}]}, "Mixer")
    names = {s["id"]: s["name"] for s in (vip, spender, mixer)}
    people = ids_by_external(api, shop)
    take_messages(MEMBERSHIP_EVENTS_QUEUE)
    assert member_ids(api, shop, mixer["id"]) == ["p-1", "p-2"]

    p1, p2, p3, p4 = (contact_id(api, shop, f"p-{n}") for n in (1, 2, 3, 4))
    assert api.post(f"/contacts/{p3}/tags", key=shop.admin_key, json={"add": ["vip"]}).status == 200
    assert api.post(f"/contacts/{p2}/tags", key=shop.admin_key, json={"remove": ["vip"]}).status == 200
    purchase = {"type": "purchase", "at": ago(0.1), "amount": 200}
    assert api.post(f"/contacts/{p4}/events", key=shop.admin_key, json={"events": [purchase]}).status in (200, 201)
    assert api.delete(f"/contacts/{p1}", key=shop.admin_key).status == 204
    changes = take_changes(shop.id)
    assert len(changes) == 4

    assert deliver(app, APPLY, CONTACT_CHANGES_QUEUE, changes, times=2, batch_size=3) == []

    events = take_messages(MEMBERSHIP_EVENTS_QUEUE, shop.id)
    assert len({e["id"] for e in events}) == len(events)
    assert announced(events, names, people) == sorted(
        [
            ("segment.entered", "VIP", "p-3"),
            ("segment.entered", "Mixer", "p-3"),
            ("segment.exited", "VIP", "p-2"),
            ("segment.exited", "Mixer", "p-2"),
            ("segment.entered", "Spent over $100 this week", "p-4"),
            ("segment.entered", "Mixer", "p-4"),
            ("segment.exited", "VIP", "p-1"),
            ("segment.exited", "Spent over $100 this week", "p-1"),
            ("segment.exited", "Mixer", "p-1"),
        ]
    )
    assert {e["cause"]["change"] for e in events} == {"tags", "events", "deleted"}
    expected = {vip["id"]: ["p-3"], spender["id"]: ["p-4"], mixer["id"]: ["p-3", "p-4"]}
    for segment_id, members in expected.items():
        assert member_ids(api, shop, segment_id) == members
        assert segment_state(api, shop, segment_id)["member_count"] == len(members)
        export = api.get(f"/segments/{segment_id}/members.csv", key=shop.viewer_key).text
        assert sorted(row["external_id"] for row in csv.DictReader(io.StringIO(export))) == members
        criteria = segment_state(api, shop, segment_id)["criteria"]
        preview = api.post("/segments/preview", key=shop.viewer_key, json={"criteria": criteria}).json
        assert preview["count"] == len(members)
    overlap = api.get(f"/segments/overlap?ids={vip['id']},{mixer['id']}", key=shop.viewer_key).json
    assert overlap["pairs"][0]["both"] == 1

    assert deliver(app, APPLY, CONTACT_CHANGES_QUEUE, changes, times=1) == []  # a late third copy changes nothing
    assert take_messages(MEMBERSHIP_EVENTS_QUEUE, shop.id) == []


def test_a_contact_changing_while_its_shard_is_evaluated_ends_with_the_right_membership(
    api,
    app,
    shop,  # noqa: F811
    monkeypatch,
):
    criteria = {"any": [{"tag": "vip"}, {"attr": "lifetime_value", "op": "gt", "value": 1000}]}  # no index plan
    segment = ready(api, app, shop, criteria, "VIP or whale")
    people = ids_by_external(api, shop)
    take_messages(MEMBERSHIP_EVENTS_QUEUE)
    p1, p3 = contact_id(api, shop, "p-1"), contact_id(api, shop, "p-3")
    change_after_read = {
        shard_of(ordinal_of(p1)): (p1, {"remove": ["vip"]}),
        shard_of(ordinal_of(p3)): (p3, {"add": ["vip"]}),
    }
    real_image = SnapshotShards._image

    def read_then_change(reader, shard, with_events):
        result = real_image(reader, shard, with_events)
        if reader.contacts.tenant_id == shop.id and shard in change_after_read:
            target, change = change_after_read.pop(shard)  # the worker holds the old contact from here on
            assert api.post(f"/contacts/{target}/tags", key=shop.admin_key, json=change).status == 200
            assert deliver(app, APPLY, CONTACT_CHANGES_QUEUE, take_changes(shop.id)) == []
        return result

    monkeypatch.setattr(SnapshotShards, "_image", read_then_change)
    job = api.post(f"/segments/{segment['id']}/evaluate", key=shop.admin_key).json
    drain(app, JOBS_QUEUE)
    assert change_after_read == {}  # both changes happened mid-evaluation
    assert api.get(f"/jobs/{job['id']}", key=shop.viewer_key).json["status"] == "succeeded"
    assert member_ids(api, shop, segment["id"]) == ["p-2", "p-3"]
    assert segment_state(api, shop, segment["id"])["member_count"] == 2
    events = take_messages(MEMBERSHIP_EVENTS_QUEUE, shop.id)
    assert announced(events, {segment["id"]: "S"}, people) == [
        ("segment.entered", "S", "p-3"),
        ("segment.exited", "S", "p-1"),
    ]  # once each: from the real-time update, not again from the flip


def test_tag_only_segments_are_evaluated_from_the_index_without_reading_a_contact(api, app, shop, monkeypatch):  # noqa: F811
    def no_contact_reads(*args, **kwargs):
        raise AssertionError("a tag-only evaluation read contact items")

    cases = {
        "not vip": ({"not": {"tag": "vip"}}, ["p-3", "p-4", "p-5"]),
        "vip or family": ({"any": [{"tag": "vip"}, {"tag": "family"}]}, ["p-1", "p-2", "p-3"]),
        "family and not vip": ({"all": [{"tag": "family"}, {"not": {"tag": "vip"}}]}, ["p-3"]),
    }
    for name, (criteria, members) in cases.items():
        with monkeypatch.context() as patched:
            for reader in ("read_shard", "read_contact", "get_contacts"):
                patched.setattr(ContactTable, reader, no_contact_reads)
            reply = api.post("/segments", key=shop.admin_key, json={"name": name, "criteria": criteria})
            drain(app, JOBS_QUEUE)
            preview = api.post("/segments/preview", key=shop.viewer_key, json={"criteria": criteria, "sample_size": 0})
        assert preview.json["plan"] == "index" and preview.json["count"] == len(members)
        segment = segment_state(api, shop, reply.json["id"])
        assert segment["status"] == "ready" and segment["member_count"] == len(members)
        assert member_ids(api, shop, segment["id"]) == members

    p4 = contact_id(api, shop, "p-4")
    assert api.delete(f"/contacts/{p4}", key=shop.admin_key).status == 204  # leaves the list of every contact too
    drain(app)
    preview = api.post("/segments/preview", key=shop.viewer_key, json={"criteria": {"not": {"tag": "vip"}}}).json
    assert preview["count"] == 2


def test_a_rare_tag_narrows_which_contacts_a_shard_reads(api, app, shop):  # noqa: F811
    many_contacts(api, app, shop.admin_key, 40)  # 45 contacts, one of them tagged local
    criteria = {"all": [{"tag": "local"}, {"attr": "city", "op": "eq", "value": "paris"}]}
    reply = api.post("/segments", key=shop.admin_key, json={"name": "Paris locals", "criteria": criteria}).json
    drain(app)
    job = api.get(f"/jobs/{reply['job_id']}", key=shop.viewer_key).json
    assert job["detail"]["plan"] == "narrowed"
    assert job["counts"] == {"contacts": 1, "members": 1}  # the one candidate read, of 45 contacts
    assert member_ids(api, shop, reply["id"]) == ["p-5"]


def test_time_passing_refreshes_windows_and_announces_who_aged_out(api, app, shop):  # noqa: F811
    recent = ready(api, app, shop, {"event": "purchase", "within": "4d"}, "Bought in the last 4 days")
    mixer = ready(api, app, shop, {"all": [{"segment": recent["id"]}, {"tag": "vip"}]}, "Recent VIPs")
    registered = segment_store.time_dependent_segments()
    assert registered.count((shop.id, recent["id"])) == 1
    assert (shop.id, mixer["id"]) not in registered  # refreshed as a referrer
    assert member_ids(api, shop, recent["id"]) == ["p-1"] and member_ids(api, shop, mixer["id"]) == ["p-1"]
    take_messages(MEMBERSHIP_EVENTS_QUEUE)
    people, names = ids_by_external(api, shop), {recent["id"]: "recent", mixer["id"]: "mixer"}

    soon = system_clock() + timedelta(minutes=10)
    assert refresh_time_dependent(tenant_context(shop.id), {recent["id"]}, lambda: soon) == 0  # evaluated < 1 h ago
    later = system_clock() + timedelta(days=2)
    assert refresh_time_dependent(tenant_context(shop.id), {recent["id"]}, lambda: later) == 2
    drain(app, JOBS_QUEUE)
    assert member_ids(api, shop, recent["id"]) == [] and member_ids(api, shop, mixer["id"]) == []
    events = take_messages(MEMBERSHIP_EVENTS_QUEUE, shop.id)
    assert announced(events, names, people) == [("segment.exited", "mixer", "p-1"), ("segment.exited", "recent", "p-1")]
    assert {e["cause"]["reason"] for e in events} == {"refresh"}


def test_lost_changes_are_reconciled_by_evaluation_and_announced_once_under_redelivery(api, app, shop):  # noqa: F811
    segment = ready(api, app, shop, {"any": [{"tag": "vip"}, {"attr": "city", "op": "eq", "value": "Paris"}]}, "S")
    take_messages(MEMBERSHIP_EVENTS_QUEUE)
    p4 = contact_id(api, shop, "p-4")
    assert api.post(f"/contacts/{p4}/tags", key=shop.admin_key, json={"add": ["vip"]}).status == 200
    take_changes(shop.id)  # the change message is lost
    assert member_ids(api, shop, segment["id"]) == ["p-1", "p-2", "p-5"]
    job = api.post(f"/segments/{segment['id']}/evaluate", key=shop.admin_key).json
    chunks = take_messages(JOBS_QUEUE, shop.id)
    assert deliver(app, "process_job_chunks", JOBS_QUEUE, chunks, times=2) == []
    assert api.get(f"/jobs/{job['id']}", key=shop.viewer_key).json["status"] == "succeeded"
    assert member_ids(api, shop, segment["id"]) == ["p-1", "p-2", "p-4", "p-5"]
    events = take_messages(MEMBERSHIP_EVENTS_QUEUE, shop.id)
    assert [(e["type"], e["contact_id"], e["cause"]["reason"]) for e in events] == [
        ("segment.entered", p4, "requested")
    ]


def test_a_worker_that_crashes_mid_shard_is_retried_and_the_job_completes(api, app, shop, monkeypatch):  # noqa: F811
    segment = ready(api, app, shop, {"attr": "city", "op": "eq", "value": "Toronto"}, "Toronto")
    real_write = segment_store.SegmentTable.write_shard_members
    crashes = []

    def crash_once(table, segment_id, generation, shard, ordinals):
        if not crashes:
            crashes.append(shard)
            raise RuntimeError("the worker died after reading its shard")
        return real_write(table, segment_id, generation, shard, ordinals)

    monkeypatch.setattr(segment_store.SegmentTable, "write_shard_members", crash_once)
    job = api.post(f"/segments/{segment['id']}/evaluate", key=shop.admin_key).json
    chunks = take_messages(JOBS_QUEUE, shop.id)
    failed = deliver(app, "process_job_chunks", JOBS_QUEUE, chunks)
    assert len(failed) == 1 and crashes
    assert api.get(f"/jobs/{job['id']}", key=shop.viewer_key).json["status"] == "running"
    assert sorted(c["chunk"] for c in chunks) == list(range(len(chunks)))  # evaluation chunks are numbered by shard
    retried = [c for c in chunks if c["chunk"] == crashes[0]]
    assert deliver(app, "process_job_chunks", JOBS_QUEUE, retried) == []
    assert api.get(f"/jobs/{job['id']}", key=shop.viewer_key).json["status"] == "succeeded"
    assert member_ids(api, shop, segment["id"]) == ["p-1", "p-2", "p-4"]
