"""Shard snapshots: images in S3, manifests in the main table.

| item | pk | sk |
| --- | --- | --- |
| a shard's snapshot manifest | ``TENANT#{t}#SHARD#{nn}`` | ``#SNAPSHOT`` |

An image is an S3 object ``{tenant}/{nn}/{random}.npz`` that never changes; the manifest names the
current one and carries a version that grows with each publish. Publishing writes the new object,
then moves the manifest on only if its version is still the one the publisher started from, then
deletes the replaced object: two compactions racing cannot put an older image back.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import boto3
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import UpdateError

from chalicelib.ports.shards import Manifest
from chalicelib.resources import SNAPSHOT_BUCKET
from chalicelib.storage.table import MainTableModel, shard_pk

MANIFEST_SK = "#SNAPSHOT"


class ManifestItem(MainTableModel):
    version = NumberAttribute(null=True)
    key = UnicodeAttribute(null=True)
    built_at = UnicodeAttribute(null=True)
    contacts = NumberAttribute(null=True)
    size_bytes = NumberAttribute(null=True)
    requested_at = UnicodeAttribute(null=True)


def bucket_name() -> str:
    return os.environ.get("SEGMENTS_SNAPSHOT_BUCKET") or SNAPSHOT_BUCKET


@lru_cache(maxsize=1)
def _s3() -> Any:
    return boto3.client("s3")


def _manifest(item: ManifestItem) -> Manifest:
    return Manifest(
        version=int(item.version or 0),
        key=item.key,
        built_at=item.built_at,
        contacts=int(item.contacts or 0),
        size_bytes=int(item.size_bytes or 0),
        requested_at=item.requested_at,
    )


class SnapshotBucket:
    """The SnapshotStore port on S3 and DynamoDB, bound to one tenant."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def _item(self, shard: int) -> ManifestItem:
        return ManifestItem(shard_pk(self.tenant_id, shard), MANIFEST_SK)

    def manifest(self, shard: int) -> Manifest | None:
        try:
            return _manifest(ManifestItem.get(shard_pk(self.tenant_id, shard), MANIFEST_SK, consistent_read=True))
        except ManifestItem.DoesNotExist:
            return None

    def manifests_of(self, shards: Iterable[int]) -> dict[int, Manifest]:
        by_pk = {shard_pk(self.tenant_id, shard): shard for shard in shards}
        found = ManifestItem.batch_get([(pk, MANIFEST_SK) for pk in by_pk], consistent_read=True)
        return {by_pk[item.pk]: _manifest(item) for item in found}

    def load(self, manifest: Manifest) -> bytes | None:
        if manifest.key is None:
            return None
        try:
            return bytes(_s3().get_object(Bucket=bucket_name(), Key=manifest.key)["Body"].read())
        except _s3().exceptions.NoSuchKey:
            return None

    def publish(self, shard: int, data: bytes, replacing: Manifest | None, built_at: str, contacts: int) -> bool:
        key = f"{self.tenant_id}/{shard:02d}/{secrets.token_hex(8)}.npz"
        _s3().put_object(Bucket=bucket_name(), Key=key, Body=data)
        expected = replacing.version if replacing else 0
        unchanged = ManifestItem.version == expected
        if expected == 0:
            unchanged = unchanged | ManifestItem.version.does_not_exist()
        try:
            self._item(shard).update(
                actions=[
                    ManifestItem.version.set(expected + 1),
                    ManifestItem.key.set(key),
                    ManifestItem.built_at.set(built_at),
                    ManifestItem.contacts.set(contacts),
                    ManifestItem.size_bytes.set(len(data)),
                    ManifestItem.requested_at.remove(),  # done: the next reader or bulk write may ask again
                ],
                condition=unchanged,
            )
        except UpdateError:
            _s3().delete_object(Bucket=bucket_name(), Key=key)
            return False
        if replacing is not None and replacing.key:
            _s3().delete_object(Bucket=bucket_name(), Key=replacing.key)
        return True

    def request_compaction(self, shard: int, now: str, not_since: str) -> bool:
        try:
            self._item(shard).update(
                actions=[ManifestItem.requested_at.set(now)],
                condition=ManifestItem.requested_at.does_not_exist() | (ManifestItem.requested_at < not_since),
            )
        except UpdateError:
            return False
        return True
