"""Membership at scale, through the real code on in-process moto (the local runtime's storage).

    make bench                                   # engine table, then this one
    BENCH_MEMBERSHIP_CONTACTS=20000 python -m bench.membership

(a) a 10-tag and/or segment counted from the tag index over 1,000,000 contacts;
(c) a full evaluation of 100,000 contacts (with ~5 purchases each) delivered by
    the local runtime's queue dispatcher, with DynamoDB requests and read units: from the
    items (no snapshot asked for while (c)–(e) run), then from the snapshots a compaction
    job builds, side by side;
(d) one contact change → membership updated and its event queued, p50/p95;
(e) read units of a tag-only evaluation from the index vs the same segment by scan;
(f) a burst of repeated changes, batched vs one message a batch;
(j) 200 contacts tagged at once, drained through the bulk queue vs the path before.

Read units: see bench.inprocess.Meter (moto does not bill).
"""

from __future__ import annotations

from bench.inprocess import (  # first: moto starts before any AWS client exists
    AwsCalls,
    Meter,
    freeze_loaded_data,
    new_bench_tenant,
    print_table,
    store_contacts,
)

# isort: split

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np

from app import app
from bench.golden import CUSTOM_TYPES, GOLDEN, SEED_LOCAL_FAMILY_DISCOUNT, generate
from bench.population import TAGS
from chalicelib.composition import tenant_context
from chalicelib.domain import planner
from chalicelib.domain.contacts import SHARDS, Contact, contact_id_for
from chalicelib.domain.shard_image import ShardImage
from chalicelib.resources import CONTACT_CHANGES_BULK_QUEUE, CONTACT_CHANGES_QUEUE, JOBS_QUEUE, MEMBERSHIP_EVENTS_QUEUE
from chalicelib.services import evaluation, reactions, shards
from chalicelib.storage.catalog import CatalogTable
from chalicelib.storage.contacts import TAG_CHUNK_SIZE, ContactTable, TagChunkItem, TagCountItem, tag_pk
from chalicelib.storage.queues import SqsQueues
from chalicelib.storage.snapshots import SnapshotBucket
from chalicelib.storage.table import MainTableModel
from infra.local.dispatcher import Dispatcher
from tests.support.client import ApiClient
from tests.support.queues import take_messages

PARTNERSTACK = next(g.criteria for g in GOLDEN if g.name.startswith("ten tags"))


# --- (a) the tag index over 1,000,000 contacts ---------------------------------------------------------


def write_postings(tenant_id: str, postings: dict[str, np.ndarray]) -> None:
    with MainTableModel.batch_write() as batch:
        for tag, ordinals in postings.items():
            chunks = ordinals // TAG_CHUNK_SIZE
            for chunk in np.unique(chunks):
                members = {int(o) for o in ordinals[chunks == chunk]}
                batch.save(TagChunkItem(tag_pk(tenant_id, tag), f"CHUNK#{chunk:05d}", ordinals=members))
                batch.save(TagCountItem(tag_pk(tenant_id, tag), f"COUNT#{chunk:05d}", n=len(members)))


def mask_of(formula: dict[str, Any], masks: dict[str, np.ndarray], everyone: np.ndarray) -> np.ndarray:
    """The same formula with boolean masks: an independent check of the set algebra."""
    kind = next(iter(formula))
    if kind == "tag":
        return masks[formula["tag"]]
    if kind == "not":
        return everyone & ~mask_of(formula["not"], masks, everyone)
    parts = [mask_of(child, masks, everyone) for child in formula[kind]]
    return np.logical_and.reduce(parts) if kind == "all" else np.logical_or.reduce(parts)


def bench_index(meter: Meter, count: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(5)
    tags = planner.tags_of(PARTNERSTACK)
    masks = {
        tag: rng.random(count + 1) < density
        for tag, density in zip(sorted(tags), np.linspace(0.02, 0.3, len(tags)), strict=True)
    }
    everyone = np.ones(count + 1, dtype=bool)
    everyone[0] = False  # ordinals start at 1
    for mask in masks.values():
        mask[0] = False
    tenant_id = "ten_bench_index"
    started = time.perf_counter()
    postings = {tag: np.flatnonzero(mask) for tag, mask in masks.items()}
    postings[planner.EVERYONE] = np.flatnonzero(everyone)
    write_postings(tenant_id, postings)
    load = time.perf_counter() - started
    meter.reset()
    started = time.perf_counter()
    read = ContactTable(tenant_id).postings(planner.postings_needed(PARTNERSTACK))
    read_seconds = time.perf_counter() - started
    algebra = []
    for _ in range(5):
        started = time.perf_counter()
        members = planner.evaluate_index(PARTNERSTACK, read)
        algebra.append(time.perf_counter() - started)
    expected = int(mask_of(PARTNERSTACK, masks, everyone).sum())
    if len(members) != expected:
        raise SystemExit(f"index count {len(members)} != mask count {expected}")
    return [
        ("(a) 10-tag and/or count from the index", f"{count:,} contacts, {len(members):,} members (= mask check)"),
        ("    set algebra (engine time, best of 5)", f"{min(algebra) * 1000:.1f} ms"),
        (
            "    reading + decoding the posting lists",
            f"{read_seconds * 1000:.0f} ms, {meter.total()} requests, "
            f"{meter.read_units:,.0f} read units, 0 contact items",
        ),
        ("    (writing the index into moto)", f"{load:.1f} s"),
    ]


# --- (c)–(e) a 100,000-contact tenant -------------------------------------------------------------------


def load_tenant(api: ApiClient, count: int, now: datetime) -> tuple[str, str, float]:
    tenant_id, key = new_bench_tenant(api, "Bench", TAGS)
    started = time.perf_counter()
    people = generate(count, now)
    for name, kind in CUSTOM_TYPES.items():
        CatalogTable(tenant_id).register_attribute_type(name, kind)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    contacts = [
        Contact(
            id=contact_id_for(p.ordinal),
            ordinal=p.ordinal,
            external_id=p.external_id,
            email=p.email,
            first_name=p.first_name,
            tags=p.tags,
            attributes=p.attributes,
            version=1,
            created_at=stamp,
            updated_at=stamp,
        )
        for p in people
    ]
    store_contacts(tenant_id, contacts)
    for person, contact in zip(people, contacts, strict=True):
        if person.events:
            events = [{**e, "id": f"evt_{person.ordinal}_{i}"} for i, e in enumerate(person.events)]
            ContactTable(tenant_id).put_events_many([(contact, events, [2_000_000_000] * len(events))])
    return tenant_id, key, time.perf_counter() - started


def evaluate_through_dispatcher(api, dispatcher, key, criteria, name) -> tuple[dict, float, dict]:
    started = time.perf_counter()
    segment = api.post("/segments", key=key, json={"name": name, "criteria": criteria}).json
    dispatcher.drain(queue_names=frozenset({JOBS_QUEUE}))
    seconds = time.perf_counter() - started
    job = api.get(f"/jobs/{segment['job_id']}", key=key).json
    return api.get(f"/segments/{segment['id']}", key=key).json, seconds, job


@contextmanager
def no_compaction() -> Iterator[None]:
    """The item path as it was: while it is measured, readers neither ask for a compaction nor publish the
    items they read as a snapshot."""
    asked, published = shards.start_compaction, shards.snapshot_from_items
    shards.start_compaction = lambda *args, **kwargs: None  # type: ignore[assignment]
    shards.snapshot_from_items = lambda contacts, snapshots, shard, replacing, clock: ShardImage.build(  # type: ignore[assignment]
        *contacts.read_shard(shard)
    )
    try:
        yield
    finally:
        shards.start_compaction, shards.snapshot_from_items = asked, published  # type: ignore[assignment]


def compact_every_shard(dispatcher: Dispatcher, tenant_id: str) -> tuple[str, str]:
    """Every shard's first snapshot, built from the items by the compaction job; its row for the table."""
    started = time.perf_counter()
    job = shards.start_compaction(tenant_context(tenant_id), list(range(SHARDS)))
    dispatcher.drain(queue_names=frozenset({JOBS_QUEUE}))
    seconds = time.perf_counter() - started
    sizes = [SnapshotBucket(tenant_id).manifest(shard) for shard in range(SHARDS)]
    return (
        f"    (compaction job, {SHARDS} shards)",
        f"{seconds:.1f} s (job {job['id'] if job else '-'}), images "
        f"{sum(m.size_bytes for m in sizes if m) / 1e6:.1f} MB for {sum(m.contacts for m in sizes if m):,} contacts",
    )


def bench_tenant(meter: Meter, calls: AwsCalls, count: int) -> list[tuple[str, str]]:
    api = ApiClient(app)
    dispatcher = Dispatcher(app, wait_seconds=0)
    now = datetime.now(UTC)
    tenant_id, key, load = load_tenant(api, count, now)
    freeze_loaded_data()
    rows = [("    (loading the tenant into moto)", f"{count:,} contacts with their purchases in {load:.0f} s")]

    with no_compaction():  # (c) to (e) read the items, as every read did before snapshots
        item_rows, members_from_items = item_path_figures(api, dispatcher, meter, calls, tenant_id, key, count, now)
    rows += item_rows
    rows.append(compact_every_shard(dispatcher, tenant_id))
    meter.reset()
    calls.reset()
    segment, seconds, _ = evaluate_through_dispatcher(
        api, dispatcher, key, SEED_LOCAL_FAMILY_DISCOUNT.criteria, "local, from snapshots"
    )
    operations = ", ".join(f"{op} {n}" for (service, op), n in sorted(calls.calls.items()) if service == "dynamodb")
    if segment["member_count"] != members_from_items:
        raise SystemExit(f"from snapshots {segment['member_count']} members, from the items {members_from_items}")
    rows.insert(
        2,
        (
            "(c) the same, from snapshots",
            f"{seconds:.1f} s, {segment['member_count']:,} members, {meter.total():,} DynamoDB requests, "
            f"{meter.read_units:,.0f} read units ({operations}; and each shard's image from S3)",
        ),
    )
    return rows


def item_path_figures(
    api: ApiClient,
    dispatcher: Dispatcher,
    meter: Meter,
    calls: AwsCalls,
    tenant_id: str,
    key: str,
    count: int,
    now: datetime,
) -> tuple[list[tuple[str, str]], int]:
    """(c) to (e) on the item path, with how many members (c) found."""
    rows: list[tuple[str, str]] = []
    meter.reset()
    segment, seconds, job = evaluate_through_dispatcher(
        api, dispatcher, key, SEED_LOCAL_FAMILY_DISCOUNT.criteria, "local"
    )
    rows.append(
        (
            "(c) full evaluation, local family discount buyers",
            f"{seconds:.1f} s, {job['progress']['chunks_total']} shards, {job['counts']['contacts']:,} contacts, "
            f"{segment['member_count']:,} members, {meter.total():,} DynamoDB requests, "
            f"{meter.read_units:,.0f} read units",
        )
    )
    vip, _, _ = evaluate_through_dispatcher(api, dispatcher, key, {"tag": "vip"}, "vip")
    evaluate_through_dispatcher(
        api, dispatcher, key, {"any": [{"segment": segment["id"]}, {"segment": vip["id"]}]}, "mixer"
    )
    take_messages(MEMBERSHIP_EVENTS_QUEUE)

    latencies, events = [], 0
    for n in range(200):
        contact_id = contact_id_for(1 + (n * 7919) % count)
        change = {"add": ["vip"]} if n % 2 == 0 else {"remove": ["vip"]}
        started = time.perf_counter()
        api.post(f"/contacts/{contact_id}/tags", key=key, json=change)
        dispatcher.drain(queue_names=frozenset({CONTACT_CHANGES_QUEUE}))
        events += len(take_messages(MEMBERSHIP_EVENTS_QUEUE, tenant_id))
        latencies.append(time.perf_counter() - started)
    rows.append(
        (
            "(d) one contact change → membership + events queued",
            f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {np.percentile(latencies, 95) * 1000:.0f} ms "
            f"over 200 changes ({events} events; 3 segments: tags, events, mixer)",
        )
    )

    rows.append(burst_of_changes(api, dispatcher, calls, tenant_id, key, count))
    rows.append(bulk_drain(api, dispatcher, calls, tenant_id, key, count))

    ctx = tenant_context(tenant_id)
    frozen = evaluation.snapshot(ctx, PARTNERSTACK, ())
    meter.reset()
    started = time.perf_counter()
    by_index = len(evaluation.index_members(ctx, frozen["index"]))
    index_seconds, index_units, index_requests = time.perf_counter() - started, meter.read_units, meter.total()
    meter.reset()
    started = time.perf_counter()
    compiled = evaluation.compile_snapshot(frozen)
    by_scan = sum(len(r.members) for r in evaluation.evaluate_shards(ctx, compiled, now, range(SHARDS)))
    scan_seconds, scan_units, scan_requests = time.perf_counter() - started, meter.read_units, meter.total()
    if by_index != by_scan:
        raise SystemExit(f"index found {by_index}, scan {by_scan}")
    rows.append(
        (
            "(e) 10-tag segment: tag index vs full scan",
            f"index {index_units:,.0f} read units / {index_requests} requests / {index_seconds * 1000:.0f} ms; "
            f"scan {scan_units:,.0f} read units / {scan_requests} requests / {scan_seconds:.1f} s "
            f"({scan_units / max(index_units, 1):.0f}x the read units); both {by_index:,} members",
        )
    )
    return rows, segment["member_count"]


def burst_of_changes(api, dispatcher, calls: AwsCalls, tenant_id: str, key: str, count: int) -> tuple[str, str]:
    """20 contacts changed 5 times each in a row (a person editing, a client retrying): the queued messages
    drained through the handler in batches of 10 (a contact brought up to date once per batch, the tenant's
    triggers and challenges read once per batch) and, for a second such burst, one message a batch (a lone
    change's cost). DynamoDB requests of the reactions, SQS excluded."""

    def burst(first: int) -> list[dict]:
        with calls.not_counted():
            for n in range(20):
                contact_id = contact_id_for(1 + (first + n * 7919) % count)
                for step in range(5):
                    change = {"add": ["vip"]} if step % 2 == 0 else {"remove": ["vip"]}
                    api.post(f"/contacts/{contact_id}/tags", key=key, json=change)
            return take_messages(CONTACT_CHANGES_QUEUE, tenant_id)

    def dynamodb_requests() -> int:
        return sum(n for (service, _), n in calls.calls.items() if service == "dynamodb")

    def by_operation(changes: int) -> str:
        ops = sorted((op, n) for (service, op), n in calls.calls.items() if service == "dynamodb")
        return ", ".join(f"{op} {n / changes:.1f}" for op, n in ops)

    batched_messages = burst(1)
    with calls.not_counted():
        SqsQueues().send(CONTACT_CHANGES_QUEUE, batched_messages)  # back on the queue, in the order written
    calls.reset()
    dispatcher.drain(queue_names=frozenset({CONTACT_CHANGES_QUEUE}))
    batched = dynamodb_requests() / len(batched_messages)
    batched_ops = by_operation(len(batched_messages))
    alone_messages = burst(2)
    calls.reset()
    for message in alone_messages:
        ctx = tenant_context(tenant_id)
        reactions.bring_up_to_date(ctx, message)
        reactions.fire_triggers(ctx, message)
    alone = dynamodb_requests() / len(alone_messages)
    alone_ops = by_operation(len(alone_messages))
    take_messages(MEMBERSHIP_EVENTS_QUEUE, tenant_id)
    return (
        "(f) a burst, 20 contacts × 5 changes: DynamoDB requests",
        f"in batches of 10 {batched:.1f} a change ({len(batched_messages)} changes: {batched_ops}); "
        f"one message a batch {alone:.1f} a change ({len(alone_messages)} changes: {alone_ops})",
    )


def bulk_drain(api, dispatcher, calls: AwsCalls, tenant_id: str, key: str, count: int) -> tuple[str, str]:
    """200 contacts tagged in one request (200 change messages on the bulk queue), drained as deployed —
    batches of up to 100, each batch's contacts read together and evaluated as one Population — side by side
    with the path before: the same kind of burst (200 other contacts) through batches of 10, each contact read
    and evaluated on its own. Changes/s and DynamoDB requests per change, SQS excluded."""

    def burst(first: int) -> list[dict]:
        with calls.not_counted():
            ids = [contact_id_for(1 + (first + n * 7919) % count) for n in range(200)]
            api.post("/tags/local/contacts", key=key, json={"contact_ids": ids})
            return take_messages(CONTACT_CHANGES_BULK_QUEUE, tenant_id)

    def drain_through(queue: str, messages: list[dict]) -> tuple[float, float]:
        with calls.not_counted():
            SqsQueues().send(queue, messages)
        calls.reset()
        started = time.perf_counter()
        dispatcher.drain(queue_names=frozenset({queue}))
        seconds = time.perf_counter() - started
        requests = sum(n for (service, _), n in calls.calls.items() if service == "dynamodb")
        return len(messages) / seconds, requests / len(messages)

    batched_rate, batched_requests = drain_through(CONTACT_CHANGES_BULK_QUEUE, burst(11))
    real_prepare = reactions.BatchReactions.prepare
    reactions.BatchReactions.prepare = lambda self, changes: None  # type: ignore[method-assign]  # the path before
    try:
        alone_rate, alone_requests = drain_through(CONTACT_CHANGES_QUEUE, burst(5003))
    finally:
        reactions.BatchReactions.prepare = real_prepare  # type: ignore[method-assign]
    take_messages(MEMBERSHIP_EVENTS_QUEUE, tenant_id)
    return (
        "(j) 200 contacts tagged at once: drain",
        f"bulk queue, batches of 100 read together {batched_rate:.0f} changes/s, {batched_requests:.1f} DynamoDB "
        f"requests a change; before (batches of 10, each contact read alone) {alone_rate:.0f} changes/s, "
        f"{alone_requests:.1f} requests a change",
    )


def main() -> None:
    meter = Meter()
    rows = bench_index(meter, int(os.environ.get("BENCH_INDEX_CONTACTS", "1000000")))
    rows += bench_tenant(meter, AwsCalls(), int(os.environ.get("BENCH_MEMBERSHIP_CONTACTS", "100000")))
    print_table(rows)


if __name__ == "__main__":
    main()
