"""Reading whole shards: from snapshots patched with what changed since, or from the contact items.

Every contact write marks its contacts *dirty* in the same transaction (storage/contacts.py), and a
shard's snapshot is an image of the shard (domain/shard_image.py) taken after some marks were read.
A read is then exact without reading the shard's items:

1. read the shard's dirty marks, **then** its manifest, then the image the manifest names;
2. re-read the dirty contacts (few) and patch them into the image.

A compaction folds the marks into a new image: it reads the marks, builds the image (the old one
patched, or a full read of the items when there is none or too much changed), publishes it only if
the manifest is still the one it started from, and only then forgets the marks it read. A mark never
changes — every write leaves a new one — so a contact written while the compaction ran stays dirty. Because a
mark disappears only after an image holding its write is published, and readers read marks before the
manifest, a reader either still sees the mark or already sees the newer image: no write is ever missed,
and writers never wait for a compaction.

With more dirty contacts than the tenant's ``snapshots.compact_after_changes``, or no snapshot yet, a reader
reads the items instead of re-reading contacts one by one (reading no more marks than it needs to know
that) and publishes what it read as the shard's snapshot, exactly as a compaction would (the marks it
forgets are those read before the items): the first preview after a bulk load pays for the items, the next
one reads a snapshot. A read without events (the overview) cannot make a snapshot; it asks for a
compaction (a job, one chunk per shard), as readers do when the oldest mark is older than
``snapshots.compact_after_seconds`` or the image is over a day old (then rebuilt from the items, so events
DynamoDB expired without a write leave it). Full evaluations and time refreshes read through the same port,
so a tenant's first evaluation makes its first snapshots.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from chalicelib.concurrency import read_ahead
from chalicelib.domain.clock import Clock, parse_rfc3339, system_clock, to_rfc3339
from chalicelib.domain.contacts import ordinal_of
from chalicelib.domain.shard_image import ShardImage
from chalicelib.logs import logger
from chalicelib.ports.contacts import ContactReader, ContactRepository, DirtyMark
from chalicelib.ports.shards import Manifest, SnapshotStore
from chalicelib.services import jobs
from chalicelib.services.context import TenantContext

COMPACT = "snapshot_compact"
REQUEST_EVERY = timedelta(seconds=60)
"""A shard's compaction is asked for at most once a minute, however many readers see it due, unless the one
asked for was published since."""
QUIET = timedelta(seconds=5)
"""How long a shard a bulk write asked to compact must go without a new mark first (tests set it to 0)."""
REBUILD_AFTER = timedelta(days=1)
"""An image older than this is rebuilt from the items rather than patched (events past their retention,
which DynamoDB expires without a write, leave it then)."""


class ItemShards:
    """The ShardReader port over the contact items: one Query per shard, every contact parsed; a few shards read
    at once (chalicelib/concurrency.py), as SnapshotShards does."""

    def __init__(self, contacts: ContactReader) -> None:
        self.contacts = contacts

    def images(self, shards: Iterable[int], with_events: bool = True) -> Iterator[ShardImage]:
        return read_ahead(lambda shard: ShardImage.build(*self.contacts.read_shard(shard, with_events)), shards)


class _DecodedImages:
    """Images decoded in this process, by their (never reused) object key, up to a total of rows: a person
    refining criteria previews the same snapshots again and again. Shared by the threads of a process (the
    local runtime's pollers and API): a lock guards the map, never a fetch or a decode."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._images: OrderedDict[str, ShardImage] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, load: Callable[[], bytes | None]) -> ShardImage | None:
        with self._lock:
            if key in self._images:
                self._images.move_to_end(key)
                return self._images[key]
        data = load()
        if data is None:
            return None
        image = ShardImage.from_bytes(data)
        with self._lock:
            self._images[key] = image
            while sum(i.size for i in self._images.values()) > self.max_rows and len(self._images) > 1:
                self._images.popitem(last=False)
        return image

    def clear(self) -> None:
        with self._lock:
            self._images.clear()


DECODED = _DecodedImages(max_rows=2_000_000)


class _PatchedImages:
    """The last patched image of each snapshot in this process, with the marks it was patched for: the next
    read re-reads only the contacts named by a mark it has not seen (every write leaves a new mark, and while a
    snapshot is current its marks are never forgotten), so a person previewing again and again re-reads
    nothing that did not change since."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._patched: OrderedDict[tuple[str, bool], tuple[ShardImage, dict[str, DirtyMark]]] = OrderedDict()
        self._lock = threading.Lock()

    def patch(
        self, key: str, image: ShardImage, dirty: Mapping[str, DirtyMark], contacts: ContactReader, with_events: bool
    ) -> ShardImage:
        with self._lock:
            base, seen = self._patched.get((key, with_events), (image, {}))
        changed = {contact_id: mark for contact_id, mark in dirty.items() if seen.get(contact_id) != mark}
        patched = _patch(base, changed, contacts, with_events)
        with self._lock:
            self._patched[(key, with_events)] = (patched, dict(dirty))
            self._patched.move_to_end((key, with_events))
            while len(self._patched) > self.max_entries:
                self._patched.popitem(last=False)
        return patched


PATCHED = _PatchedImages(max_entries=256)


def _patch(image: ShardImage, dirty: Mapping[str, DirtyMark], contacts: ContactReader, with_events: bool) -> ShardImage:
    if not dirty:
        return image
    fresh = ShardImage.build(*contacts.read_contacts(dirty, with_events))
    return image.patched([o for o in map(ordinal_of, dirty) if o is not None], fresh)


class SnapshotShards:
    """The ShardReader port over snapshots: the shard's image patched with its dirty contacts (module doc)."""

    def __init__(
        self,
        contacts: ContactRepository,
        snapshots: SnapshotStore,
        settings: Mapping[str, Any],
        request_compaction: Callable[[list[int]], Any],
        clock: Clock = system_clock,
    ) -> None:
        self.contacts = contacts
        self.snapshots = snapshots
        self.dirty_limit = int(settings["compact_after_changes"])
        self.dirty_age = timedelta(seconds=int(settings["compact_after_seconds"]))
        self.request_compaction = request_compaction
        self.clock = clock

    def images(self, shards: Iterable[int], with_events: bool = True) -> Iterator[ShardImage]:
        """Each shard's image, a few shards read at once (each is a few requests one after the other: marks,
        manifest, image or items, dirty contacts); once all are read, one compaction job for those that are due."""
        due = []
        for shard, image, is_due in read_ahead(lambda s: (s, *self._image(s, with_events)), shards):
            due += [shard] if is_due else []
            yield image
        if due:
            self.request_compaction(due)

    def _image(self, shard: int, with_events: bool) -> tuple[ShardImage, bool]:
        for _ in range(3):  # a compaction may remove the image between reading its manifest and loading it
            dirty = self.contacts.dirty(shard, limit=self.dirty_limit + 1)  # before the manifest: module doc
            manifest = self.snapshots.manifest(shard)
            due = self._due(manifest, dirty)
            if manifest is None or manifest.key is None or len(dirty) > self.dirty_limit:
                break
            image = DECODED.get(manifest.key, lambda m=manifest: self.snapshots.load(m))  # type: ignore[misc]
            if image is not None:
                return PATCHED.patch(manifest.key, image, dirty, self.contacts, with_events), due
        if not with_events:  # an image without events cannot be a snapshot: the compaction job builds one
            return ShardImage.build(*self.contacts.read_shard(shard, with_events=False)), True
        image = snapshot_from_items(self.contacts, self.snapshots, shard, manifest, self.clock)
        return image, False

    def _due(self, manifest: Manifest | None, dirty: Mapping[str, DirtyMark]) -> bool:
        if manifest is None or manifest.key is None or len(dirty) > self.dirty_limit:
            return True
        now = self.clock()
        oldest = min((parse_rfc3339(mark.at) for mark in dirty.values()), default=None)
        return (oldest is not None and now - oldest > self.dirty_age) or _stale(manifest, now)


def _stale(manifest: Manifest, now: Any) -> bool:
    return manifest.built_at is None or now - parse_rfc3339(manifest.built_at) > REBUILD_AFTER


def compact(
    contacts: ContactRepository, snapshots: SnapshotStore, shard: int, dirty_limit: int, clock: Clock = system_clock
) -> ShardImage:
    """Fold the shard's dirty contacts into a new snapshot (module doc); return the image now current."""
    dirty = contacts.dirty(shard)
    manifest = snapshots.manifest(shard)
    built_at = clock()
    image = None
    if manifest is not None and manifest.key and len(dirty) <= dirty_limit and not _stale(manifest, built_at):
        image = DECODED.get(manifest.key, lambda: snapshots.load(manifest))
    if image is None:
        return snapshot_from_items(contacts, snapshots, shard, manifest, clock)
    image = _patch(image, dirty, contacts, with_events=True)
    _publish(contacts, snapshots, shard, image, manifest, dirty, built_at)
    return image


def snapshot_from_items(
    contacts: ContactRepository, snapshots: SnapshotStore, shard: int, replacing: Manifest | None, clock: Clock
) -> ShardImage:
    """The shard read from its items, published as its snapshot unless ``replacing`` is no longer current.

    A reader that has to read the items (no snapshot yet, or more changed than is worth patching in) publishes
    what it read, as a compaction would: the next reader — the same person refining criteria a second later —
    reads a snapshot rather than every item again, whether or not the compaction job has run yet. The marks
    it forgets are those read before the items (their writes are in them); a write after leaves its own."""
    dirty = contacts.dirty(shard)
    built_at = clock()
    image = ShardImage.build(*contacts.read_shard(shard))
    _publish(contacts, snapshots, shard, image, replacing, dirty, built_at)
    return image


def _publish(
    contacts: ContactRepository,
    snapshots: SnapshotStore,
    shard: int,
    image: ShardImage,
    replacing: Manifest | None,
    dirty: Mapping[str, DirtyMark],
    built_at: datetime,
) -> None:
    if snapshots.publish(shard, image.to_bytes(), replacing, to_rfc3339(built_at), image.size):
        contacts.forget_dirty(shard, dirty)
    else:
        logger.info("snapshot publish lost a race", extra={"shard": shard})


def start_compaction(
    ctx: TenantContext, shards: Iterable[int], clock: Clock = system_clock, quiet: bool = False
) -> dict[str, Any] | None:
    """A compaction job over the ``shards`` nobody asked to compact within REQUEST_EVERY (None: all were);
    ``quiet``: each shard waits until no write has marked it for QUIET. The manifests are read first, in one
    request, and only the shards not asked for lately are asked (each ask is still conditional): every bulk
    request of a load lands here, and 64 asks one after the other, nearly all refused, took a quarter of a
    1,000-event request under ``make run``."""
    now, shards = clock(), list(shards)
    not_since = to_rfc3339(now - REQUEST_EVERY)
    known = ctx.ports.snapshots.manifests_of(shards)
    asked_at = {shard: manifest.requested_at or "" for shard, manifest in known.items()}
    due = [shard for shard in shards if asked_at.get(shard, "") < not_since]
    asked = [shard for shard in due if ctx.ports.snapshots.request_compaction(shard, to_rfc3339(now), not_since)]
    if not asked:
        return None
    chunks = [{"shard": s, "quiet": quiet} for s in asked]
    return jobs.start_job(ctx, COMPACT, chunks, total=len(asked), clock=clock)


def compact_after_bulk_write(ctx: TenantContext, written: int, marked: Iterable[int]) -> None:
    """After a bulk write (an import, bulk events, bulk tagging) of ``written`` contacts in the ``marked``
    shards: if that is at least ``compact_after_changes``, their compaction, once they are quiet — a load of
    many requests is then compacted once, just after it, and the first preview after it reads snapshots, not
    every item."""
    if written >= int(ctx.settings["snapshots"]["compact_after_changes"]):
        start_compaction(ctx, sorted(set(marked)), quiet=True)


def _marked_within(contacts: ContactReader, shard: int, span: timedelta) -> bool:
    latest = max((parse_rfc3339(mark.latest) for mark in contacts.dirty(shard).values()), default=None)
    return latest is not None and system_clock() - latest < span


def _compact_chunk(ctx: TenantContext, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    shard = int(payload["shard"])
    if payload.get("quiet") and _marked_within(ctx.ports.contacts, shard, QUIET):
        raise jobs.NotYet(max(1, int(QUIET.total_seconds())))  # still being written: once it pauses
    image = compact(
        ctx.ports.contacts, ctx.ports.snapshots, shard, int(ctx.settings["snapshots"]["compact_after_changes"])
    )
    return {"counts": {"processed": 1, "contacts": image.size}}


JOB_KINDS = {COMPACT: jobs.JobKind(_compact_chunk, counters=("contacts",), takes_place=False)}
