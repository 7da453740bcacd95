"""The contacts of a shard, as one columnar image, and the snapshots that make reading them cheap.

``ShardReader`` is the one way a service reads whole shards (previews, overview, full evaluations,
time refreshes): services/shards.py implements it over the contact items (``ItemShards``) and over
snapshots patched with the contacts written since (``SnapshotShards``). ``SnapshotStore`` keeps each
shard's latest image and its manifest; storage/snapshots.py puts the images in S3 and the manifests
in the main table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from chalicelib.domain.shard_image import ShardImage


class ShardReader(Protocol):
    def images(self, shards: Iterable[int], with_events: bool = True) -> Iterator[ShardImage]:
        """For each shard in turn, every contact of it as it is now (and, unless ``with_events`` is False,
        their events)."""


@dataclass(frozen=True)
class Manifest:
    """Which image is a shard's snapshot. ``version`` grows by one with each published image."""

    version: int
    key: str | None
    built_at: str | None = None
    contacts: int = 0
    size_bytes: int = 0
    requested_at: str | None = None
    """When a compaction was last asked for (so readers ask once, not once each)."""


class SnapshotStore(Protocol):
    def manifest(self, shard: int) -> Manifest | None:
        """Strongly consistent."""

    def manifests_of(self, shards: Iterable[int]) -> dict[int, Manifest]:
        """Strongly consistent, in one batch read; a shard with no manifest yet is left out."""

    def load(self, manifest: Manifest) -> bytes | None:
        """The image's bytes; None when a newer publish has already removed it."""

    def publish(self, shard: int, data: bytes, replacing: Manifest | None, built_at: str, contacts: int) -> bool:
        """Store ``data`` as the shard's snapshot if the manifest is still ``replacing``; False (nothing
        changed) when another publish came first. The replaced image is removed, and the ask for a
        compaction answered (:meth:`request_compaction` may ask again at once)."""

    def request_compaction(self, shard: int, now: str, not_since: str) -> bool:
        """Mark a compaction as asked for at ``now`` unless one was asked for after ``not_since`` and not yet
        published; True when this call is the one that asked."""
