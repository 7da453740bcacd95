"""Snapshots patched with dirty contacts read exactly what the items hold, whatever races them (on fakes).

Every read is compared with the item path (``ItemShards``) row by row: ordinal, tags, group, every
value and every event. The races the design must survive are played out explicitly: a write between a
compaction's read of the marks and its publish, two compactions at once, an image removed between a
reader's manifest and its load."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.clock import system_clock
from chalicelib.domain.contacts import Contact, contact_id_for, shard_of
from chalicelib.domain.shard_image import ShardImage
from chalicelib.resources import JOBS_QUEUE
from chalicelib.services import contacts, jobs, shards, tags
from chalicelib.services.shards import DECODED, ItemShards, SnapshotShards, compact
from tests.support.fakes import InMemoryCatalog, InMemoryContacts, InMemorySnapshots, fake_context

SETTINGS = {"compact_after_changes": 4, "compact_after_seconds": 300}


@pytest.fixture(autouse=True)
def compaction_jobs():
    jobs.register_kinds(shards.JOB_KINDS)


def rows(image: ShardImage) -> list[tuple[Any, ...]]:
    """An image as plain rows, for comparing two images whatever their factorisation."""

    def value(column: Any, row: int) -> Any:
        return None if column.codes[row] < 0 else repr(column.values[column.codes[row]])

    out = []
    for row, ordinal in enumerate(image.ordinals):
        tags = sorted(image.tag_names[c] for c in image.tag_codes[image.tag_owners == row])
        values = {name: value(column, row) for name, column in image.values.items() if column.codes[row] >= 0}
        events = sorted(
            (kind, float(columns.at[i]), tuple(sorted((n, value(c, i)) for n, c in columns.values.items())))
            for kind, columns in image.events.items()
            for i in np.flatnonzero(columns.owners == row)
        )
        out.append((int(ordinal), tags, value(image.groups, row), values, events))
    return out


class World:
    def __init__(self) -> None:
        self.contacts = InMemoryContacts("tenant_snap")
        self.snapshots = InMemorySnapshots("tenant_snap")
        self.requested: list[list[int]] = []
        self.reader = SnapshotShards(self.contacts, self.snapshots, SETTINGS, self.requested.append)

    def write(self, ordinal: int, *tags: str, **attributes: Any) -> None:
        before = self.contacts.get_contact(contact_id_for(ordinal))
        after = Contact(
            id=contact_id_for(ordinal),
            ordinal=ordinal,
            tags=frozenset(tags),
            attributes=attributes,
            version=(before.version + 1) if before else 1,
        )
        self.contacts.write([(before, after)])

    def delete(self, ordinal: int) -> None:
        before = self.contacts.get_contact(contact_id_for(ordinal))
        if before is not None:
            self.contacts.write([(before, None)])

    def buy(self, ordinal: int, event_id: str, amount: int) -> None:
        contact = self.contacts.get_contact(contact_id_for(ordinal))
        if contact is not None:
            event = {"id": event_id, "type": "purchase", "at": "2026-11-20T00:00:00Z", "amount": amount}
            self.contacts.put_events_many([(contact, [event], [0])])

    def compact(self, shard: int) -> None:
        compact(self.contacts, self.snapshots, shard, SETTINGS["compact_after_changes"])

    def compact_racing(self, ordinal: int) -> None:
        """A compaction of the contact's shard, with a write of the contact just after it read the items."""
        contacts = self.contacts
        real_read_shard, real_read = contacts.read_shard, contacts.read_contacts

        def racing(real: Any, *args: Any, **kwargs: Any) -> Any:
            contacts.read_shard, contacts.read_contacts = real_read_shard, real_read  # type: ignore[method-assign]
            found = real(*args, **kwargs)
            self.write(ordinal, "raced")
            return found

        contacts.read_shard = lambda *a, **k: racing(real_read_shard, *a, **k)  # type: ignore[method-assign]
        contacts.read_contacts = lambda *a, **k: racing(real_read, *a, **k)  # type: ignore[method-assign]
        self.compact(shard_of(ordinal))
        contacts.read_shard, contacts.read_contacts = real_read_shard, real_read  # type: ignore[method-assign]

    def assert_exact(self, shard: int) -> None:
        (read,) = self.reader.images([shard])
        (truth,) = ItemShards(self.contacts).images([shard])
        assert rows(read) == rows(truth)


def test_a_shard_without_snapshot_is_read_from_items_and_published_as_its_snapshot():
    world = World()
    world.write(16, "vip", city="Toronto")
    world.assert_exact(0)
    assert world.requested == []  # the reader published what it read: no compaction to ask for
    assert world.contacts.dirty(0) == {}  # folded into the image
    assert world.snapshots.manifest(0).contacts == 1
    world.write(32, city="Paris")
    reads = []
    real_read_shard = world.contacts.read_shard
    world.contacts.read_shard = lambda *a, **k: reads.append(a) or real_read_shard(*a, **k)  # type: ignore[method-assign]
    (image,) = world.reader.images([0])
    assert reads == [] and image.size == 2  # the next read patches the snapshot


def test_a_read_without_events_cannot_be_a_snapshot_and_asks_for_the_compaction():
    world = World()
    world.write(16, "vip", city="Toronto")
    (image,) = world.reader.images([0], with_events=False)
    assert image.size == 1 and world.snapshots.manifest(0) is None
    assert world.requested == [[0]]
    world.compact(0)
    assert world.contacts.dirty(0) == {} and world.snapshots.manifest(0).contacts == 1


def test_a_write_racing_a_reader_that_publishes_is_never_lost():
    """The write lands after the reader read the items, before it published them."""
    world = World()
    world.write(16, city="Toronto")
    real_read_shard = world.contacts.read_shard

    def read_then_write(*args: Any, **kwargs: Any) -> Any:
        world.contacts.read_shard = real_read_shard  # type: ignore[method-assign]
        found = real_read_shard(*args, **kwargs)
        world.write(16, "raced", city="Paris")
        return found

    world.contacts.read_shard = read_then_write  # type: ignore[method-assign]
    (first,) = world.reader.images([0])
    assert first.tag_names == [] and world.snapshots.manifest(0).contacts == 1  # published what it read
    assert contact_id_for(16) in world.contacts.dirty(0)  # the write after left its mark, which stayed
    world.assert_exact(0)
    (image,) = world.reader.images([0])
    assert image.tag_names == ["raced"]


def test_changes_after_a_snapshot_are_patched_in_and_deletes_drop_out():
    world = World()
    for ordinal in (16, 32, 48):
        world.write(ordinal, "vip", city="Toronto")
    world.buy(32, "e1", 10)
    world.compact(0)
    world.write(16, "local", city="Paris")  # changed
    world.delete(48)  # deleted
    world.write(64, city="Lyon")  # created
    world.buy(32, "e2", 20)  # an event
    assert set(world.contacts.dirty(0)) == {contact_id_for(o) for o in (16, 48, 64, 32)}
    world.assert_exact(0)
    world.requested.clear()
    world.compact(0)
    assert world.contacts.dirty(0) == {}
    world.assert_exact(0)
    assert world.requested == []  # nothing due: fresh and small


def test_a_write_racing_a_compaction_is_never_lost():
    """The write lands after the compaction read the marks and the contact, before it published."""
    world = World()
    world.write(16, city="Toronto")
    world.compact(0)
    world.write(16, city="Paris")
    world.compact_racing(16)
    assert contact_id_for(16) in world.contacts.dirty(0)  # its write left a new mark, which stayed
    world.assert_exact(0)
    (image,) = world.reader.images([0])
    assert image.tag_names == ["raced"] and list(image.tag_owners) == [0]


def test_of_two_racing_compactions_the_loser_publishes_nothing_and_keeps_the_marks():
    world = World()
    world.write(16, city="Toronto")
    world.compact(0)
    world.write(32, city="Paris")
    stale = world.snapshots.manifest(0)
    world.compact(0)  # the winner
    world.write(48, city="Lyon")
    before = world.snapshots.published
    data = ShardImage.empty().to_bytes()
    assert world.snapshots.publish(0, data, stale, "2026-11-30T00:00:00Z", 0) is False
    assert world.snapshots.published == before
    world.assert_exact(0)


def test_an_image_removed_under_a_reader_is_read_again():
    world = World()
    world.write(16, city="Toronto")
    world.compact(0)
    world.write(16, city="Paris")
    real_manifest = world.snapshots.manifest

    def manifest_then_compact(shard):
        seen = real_manifest(shard)
        world.snapshots.manifest = real_manifest  # type: ignore[method-assign]
        DECODED.clear()
        world.compact(shard)  # removes the image `seen` names
        return seen

    world.snapshots.manifest = manifest_then_compact  # type: ignore[method-assign]
    world.assert_exact(0)


def test_compaction_is_asked_for_when_many_changed_or_long_ago_and_at_most_once_a_minute():
    ctx = fake_context(settings={"snapshots": {"compact_after_changes": 2, "compact_after_seconds": 60}})
    for ordinal in (16, 32):
        ctx.ports.contacts.put(Contact(id=contact_id_for(ordinal), ordinal=ordinal))
    list(ctx.shards.images([0], with_events=False))  # no snapshot yet (and a read without events publishes none)
    queued = ctx.ports.queues.take(JOBS_QUEUE)
    assert [m["job_kind"] for m in queued] == [shards.COMPACT]
    list(ctx.shards.images([0], with_events=False))
    assert ctx.ports.queues.take(JOBS_QUEUE) == []  # asked a moment ago
    for message in queued + queued:  # redelivered: one compaction's effect
        jobs.run_chunk(ctx, message)
    assert ctx.ports.contacts.dirty(0) == {}
    assert ctx.ports.snapshots.manifest(0).version == 1  # the redelivered chunk was done: not run again
    later = system_clock() + timedelta(minutes=2)
    reader = SnapshotShards(
        ctx.ports.contacts,
        ctx.ports.snapshots,
        ctx.settings["snapshots"],
        lambda due: shards.start_compaction(ctx, due, lambda: later),
        lambda: later,
    )
    ctx.ports.contacts.put(Contact(id=contact_id_for(48), ordinal=48))
    list(reader.images([0]))  # one change, two minutes old
    assert [m["job_kind"] for m in ctx.ports.queues.take(JOBS_QUEUE)] == [shards.COMPACT]


def test_a_bulk_write_asks_for_its_shards_compaction_once_they_are_quiet(monkeypatch):
    ctx = fake_context(
        InMemoryCatalog(tags={"vip"}), settings={"snapshots": {"compact_after_changes": 3, "compact_after_seconds": 60}}
    )
    people = [Contact(id=contact_id_for(o), ordinal=o) for o in (16, 32, 17, 18)]  # shards 0, 1 and 2
    for person in people:
        ctx.ports.contacts.put(person)
    few = [{"contact_id": p.id, "type": "visit", "at": "2026-11-20T00:00:00Z"} for p in people[:2]]
    contacts.append_bulk_events(ctx, {"events": few})
    assert ctx.ports.queues.take(JOBS_QUEUE) == []  # fewer contacts than a compaction's worth: readers decide
    tags.retag(ctx, "vip", [p.id for p in people], add=True, source="api")
    asked = ctx.ports.queues.take(JOBS_QUEUE)
    assert sorted(m["chunk"] for m in asked) == [0, 1, 2] and {m["job_kind"] for m in asked} == {shards.COMPACT}
    for message in asked:  # just written: each waits for its shard to be quiet, not done, not failed
        jobs.run_chunk(ctx, message)
    assert len(ctx.ports.queues.take(JOBS_QUEUE)) == 3 and ctx.ports.snapshots.manifest(0).key is None
    many = [{"contact_id": p.id, "type": "visit", "at": "2026-11-21T00:00:00Z"} for p in people]
    asks = []
    ask = ctx.ports.snapshots.request_compaction
    monkeypatch.setattr(ctx.ports.snapshots, "request_compaction", lambda *a: asks.append(a) or ask(*a))
    contacts.append_bulk_events(ctx, {"events": many})
    assert ctx.ports.queues.take(JOBS_QUEUE) == []  # the waiting compaction covers it: asked once
    assert asks == []  # seen in the manifests, read together: no shard asked one by one
    monkeypatch.setattr(shards, "QUIET", timedelta(0))
    for message in asked:
        jobs.run_chunk(ctx, message)
    assert all(ctx.ports.contacts.dirty(shard) == {} for shard in (0, 1, 2))
    (image,) = ctx.shards.images([0])
    assert image.size == 2 and ctx.ports.queues.take(JOBS_QUEUE) == []  # fresh snapshots
    contacts.append_bulk_events(ctx, {"events": many})
    assert len(ctx.ports.queues.take(JOBS_QUEUE)) == 3  # published, so the next load asks again at once


def test_too_many_changes_read_the_items_instead_of_contact_by_contact():
    world = World()
    world.compact(0)
    calls = []
    real_read = world.contacts.read_contacts
    world.contacts.read_contacts = lambda ids, with_events=True: calls.append(ids) or real_read(ids, with_events)  # type: ignore[method-assign]
    for ordinal in range(16, 16 * 7, 16):  # six changes, over the limit of four
        world.write(ordinal, city="Toronto")
    world.assert_exact(0)
    assert calls == []
    assert world.requested == [] and world.contacts.dirty(0) == {}  # what it read is the new snapshot


# --- any sequence of writes, events, deletes, compactions and reads --------------------------------------

ordinals = st.sampled_from([16, 32, 48, 64, 17, 33, 49, 18])  # shards 0, 1 and 2: operations meet often
operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), ordinals, st.sampled_from([(), ("vip",), ("vip", "local")])),
        st.tuples(st.just("attr"), ordinals, st.sampled_from(["Toronto", "Paris", 3, True, ["a"]])),
        st.tuples(st.just("buy"), ordinals, st.integers(1, 5)),
        st.tuples(st.just("delete"), ordinals, st.none()),
        st.tuples(st.just("compact"), st.integers(0, 2), st.none()),
        st.tuples(st.just("race"), ordinals, st.none()),
        st.tuples(st.just("read"), st.integers(0, 2), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_any_interleaving_reads_exactly_what_the_items_hold(steps):
    world = World()
    for kind, subject, argument in steps:
        if kind == "write":
            world.write(subject, *argument)
        elif kind == "attr":
            world.write(subject, city=argument)
        elif kind == "buy":
            world.buy(subject, f"e{argument}", argument)
        elif kind == "delete":
            world.delete(subject)
        elif kind == "compact":
            world.compact(subject)
        elif kind == "race":
            world.compact_racing(subject)
        else:
            world.assert_exact(subject)
    for shard in range(3):
        world.assert_exact(shard)
