"""Segments, their version history, and their membership.

| item | pk | sk |
| --- | --- | --- |
| segment | ``TENANT#{t}`` | ``SEGMENT#{id}`` |
| saved version | ``TENANT#{t}#SEGMENT#{id}`` | ``V#{version:06d}`` |
| membership chunk | ``TENANT#{t}#SEGMENT#{id}`` | ``M#{generation}#{shard:02d}#{chunk:04d}`` |
| daily size point | ``TENANT#{t}#SEGMENT#{id}`` | ``H#{YYYY-MM-DD}`` |
| a transition event already counted | ``TENANT#{t}#SEGMENT#{id}`` | ``HSEEN#{event id}`` (expires after 3 days) |

Segments that time alone changes (windows, ``within_last``, ``older_than``) are
also in the sparse gsi1 partition ``SEGMENTS#TIME_DEPENDENT`` (sort key
``{tenant}#{segment}``), which the refresh schedule reads.

Membership is written in *generations*: an evaluation writes a whole new
generation beside the published one, and the segment item's ``generation``
flips to it (conditionally, only for the evaluation the segment is waiting for)
once every shard is written. Readers follow ``generation``, so they never see a
half-built membership; the retired generation is deleted after the flip.

A membership chunk holds the member ordinals of one shard within a range of
``MEMBER_CHUNK`` ordinals of that shard, as a DynamoDB number set, so the chunk
of any contact is computable from its ordinal (for single-contact updates) and a
shard's evaluation owns its chunks outright (a redelivered shard rewrites them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    NumberSetAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.domain.contacts import SHARDS
from chalicelib.domain.segments import EVALUATION_FIELDS, Segment, SizePoint, StaleSegment
from chalicelib.ports.segments import ANY_JOB
from chalicelib.storage.mapping import Mapper
from chalicelib.storage.table import Gsi1, MainTableModel, apply_once, cancellation_reasons, connection
from chalicelib.storage.tenants import tenant_pk

MEMBER_CHUNK = 4_096
"""Ordinals of one shard per membership item (≈ 25 KB at most)."""


class SegmentItem(MainTableModel):
    segment_id = UnicodeAttribute()
    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    criteria = UnicodeAttribute()  # canonical JSON text
    tags = UnicodeSetAttribute(null=True)
    groups = UnicodeSetAttribute(null=True)
    references = UnicodeSetAttribute(null=True)
    time_dependent = BooleanAttribute(default=False)
    version = NumberAttribute()
    status = UnicodeAttribute()
    status_reason = UnicodeAttribute(null=True)
    invalid_because = UnicodeAttribute(null=True)
    member_count = NumberAttribute(null=True)
    generation = UnicodeAttribute(null=True)
    retired_generation = UnicodeAttribute(null=True)
    job_id = UnicodeAttribute(null=True)
    pending_writes = NumberAttribute(null=True)  # real-time writes into the pending generation (storage/membership)
    evaluated_version = NumberAttribute(null=True)
    evaluated_at = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    gsi1pk = UnicodeAttribute(null=True)  # TIME_DEPENDENT for segments that time alone changes (sparse index)
    gsi1sk = UnicodeAttribute(null=True)
    gsi1 = Gsi1()


TIME_DEPENDENT = "SEGMENTS#TIME_DEPENDENT"


class SegmentVersionItem(MainTableModel):
    version = NumberAttribute()
    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    criteria = UnicodeAttribute()
    saved_at = UnicodeAttribute()


class MemberChunkItem(MainTableModel):
    ordinals = NumberSetAttribute(null=True)  # DynamoDB drops a set emptied by real-time DELETEs


class SizePointItem(MainTableModel):
    members = NumberAttribute(null=True)
    entered = NumberAttribute(default=0)
    exited = NumberAttribute(default=0)
    expires_at = NumberAttribute()


COUNTED_EVENT_KEPT_SECONDS = 3 * 86_400
"""How long a counted transition event is remembered: far beyond any SQS redelivery (4 days' retention is
the queue's, but a message is retried within its visibility timeouts, minutes)."""


def segment_key(tenant_id: str, segment_id: str) -> tuple[str, str]:
    return tenant_pk(tenant_id), f"SEGMENT#{segment_id}"


def _own_pk(tenant_id: str, segment_id: str) -> str:
    return f"TENANT#{tenant_id}#SEGMENT#{segment_id}"


SEGMENT_MAPPER = Mapper(Segment, SegmentItem, renamed={"id": "segment_id"})
"""Segment fields are SegmentItem attributes of the same names (storage/mapping.py)."""


def _item(tenant_id: str, segment: Segment) -> SegmentItem:
    time_dependent = segment.time_dependent
    return SegmentItem(
        *segment_key(tenant_id, segment.id),
        **SEGMENT_MAPPER.attributes(segment),
        gsi1pk=TIME_DEPENDENT if time_dependent else None,
        gsi1sk=f"{tenant_id}#{segment.id}" if time_dependent else None,
    )


class SegmentTable:
    """The SegmentRepository port on DynamoDB, bound to one tenant."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def _version_item(self, segment: Segment) -> SegmentVersionItem:
        return SegmentVersionItem(
            _own_pk(self.tenant_id, segment.id),
            f"V#{segment.version:06d}",
            version=segment.version,
            name=segment.name,
            description=segment.description,
            criteria=json.dumps(segment.criteria, sort_keys=True),
            saved_at=segment.updated_at,
        )

    def create(self, segment: Segment) -> None:
        self._version_item(segment).save()
        _item(self.tenant_id, segment).save(condition=SegmentItem.pk.does_not_exist())

    def save(self, before: Segment, after: Segment) -> None:
        """Write what an edit changed in ``before`` if nobody edited it meanwhile, and its version into the
        history, in one transaction (an edit that lost the race leaves no trace in the history).

        Only the changed fields are set, so counts and generations that evaluations
        and real-time updates move concurrently are never overwritten with old values.
        """
        desired = _item(self.tenant_id, after).attribute_values
        present = _item(self.tenant_id, before).attribute_values
        actions = []
        for name in sorted((set(desired) | set(present)) - EVALUATION_FIELDS - {"pk", "sk"}):
            attribute = getattr(SegmentItem, name)
            if name not in desired:
                actions.append(attribute.remove())
            elif desired[name] != present.get(name):
                actions.append(attribute.set(desired[name]))
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.update(
                    SegmentItem(*segment_key(self.tenant_id, before.id)),
                    actions=actions,
                    condition=SegmentItem.updated_at == before.updated_at,
                )
                if after.version != before.version:
                    transaction.save(self._version_item(after))
        except TransactWriteError as error:
            if "ConditionalCheckFailed" in cancellation_reasons(error):
                raise StaleSegment(before.id) from error
            raise

    def get(self, segment_id: str) -> Segment | None:
        try:
            return SEGMENT_MAPPER.entity(
                SegmentItem.get(*segment_key(self.tenant_id, segment_id), consistent_read=True)
            )
        except SegmentItem.DoesNotExist:
            return None

    def all_segments(self) -> list[Segment]:
        """Every segment of the tenant (the criteria engine and dependents need the whole graph)."""
        items = SegmentItem.query(
            tenant_pk(self.tenant_id), SegmentItem.sk.startswith("SEGMENT#"), consistent_read=True
        )
        return [SEGMENT_MAPPER.entity(item) for item in items]

    def page(self, limit: int, start: dict[str, Any] | None) -> tuple[list[Segment], dict[str, Any] | None]:
        result = SegmentItem.query(
            tenant_pk(self.tenant_id), SegmentItem.sk.startswith("SEGMENT#"), limit=limit, last_evaluated_key=start
        )
        return [SEGMENT_MAPPER.entity(item) for item in result], result.last_evaluated_key

    def versions(
        self, segment_id: str, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        result = SegmentVersionItem.query(
            _own_pk(self.tenant_id, segment_id),
            SegmentVersionItem.sk.startswith("V#"),
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=start,
        )
        found = [
            {
                "version": int(item.version),
                "name": item.name,
                "description": item.description,
                "criteria": json.loads(item.criteria),
                "saved_at": item.saved_at,
            }
            for item in result
        ]
        return found, result.last_evaluated_key

    def delete(self, segment_id: str) -> None:
        """The segment, its history and every membership generation."""
        owned = list(MainTableModel.query(_own_pk(self.tenant_id, segment_id), attributes_to_get=["pk", "sk"]))
        SegmentItem(*segment_key(self.tenant_id, segment_id)).delete()
        with MainTableModel.batch_write() as batch:
            for item in owned:
                batch.delete(item)

    def update_fields(self, segment_id: str, *, expected_job_id: Any = ANY_JOB, **fields: Any) -> bool:
        """Set a few bookkeeping fields (status, job) on a segment that still exists (and, given
        ``expected_job_id``, still waits for that job, None for none); False when the condition failed."""
        item = SegmentItem(*segment_key(self.tenant_id, segment_id))
        actions = [
            getattr(SegmentItem, name).set(value) if value is not None else getattr(SegmentItem, name).remove()
            for name, value in fields.items()
        ]
        condition = SegmentItem.pk.exists()
        if expected_job_id is not ANY_JOB:
            condition &= (
                SegmentItem.job_id == expected_job_id if expected_job_id else SegmentItem.job_id.does_not_exist()
            )
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def write_shard_members(self, segment_id: str, generation: str, shard: int, ordinals: Iterable[int]) -> None:
        """Write one shard's members of a generation, replacing whatever an earlier attempt wrote."""
        chunks: dict[int, set[int]] = {}
        for ordinal in ordinals:
            chunks.setdefault(_chunk_of(ordinal), set()).add(int(ordinal))
        prefix = f"M#{generation}#{shard:02d}#"
        earlier = MemberChunkItem.query(
            _own_pk(self.tenant_id, segment_id), MemberChunkItem.sk.startswith(prefix), attributes_to_get=["pk", "sk"]
        )
        with MainTableModel.batch_write() as batch:
            for item in earlier:
                if int(item.sk.rsplit("#", 1)[1]) not in chunks:
                    batch.delete(item)
            for chunk, members in chunks.items():
                batch.save(
                    MemberChunkItem(_own_pk(self.tenant_id, segment_id), f"{prefix}{chunk:04d}", ordinals=members)
                )

    def publish(self, segment_id: str, job_id: str, fields: dict[str, Any]) -> str | None:
        """Flip the segment to the generation written by ``job_id`` if the segment still waits for that job.

        ``member_count`` is counted from the generation itself, which real-time
        updates may have changed since its shards were written; the flip is
        conditioned on no such update landing between the count and the flip
        (``pending_writes``), and counts again if one did. Returns the generation it
        replaced (to be deleted) or raises StaleSegment when another evaluation
        superseded this one (or the segment is gone). Safe to repeat: a second call
        finds the flip done and returns the same retired generation.
        """
        while True:
            try:
                item = SegmentItem.get(*segment_key(self.tenant_id, segment_id), consistent_read=True)
            except SegmentItem.DoesNotExist:
                raise StaleSegment(segment_id) from None
            if item.job_id != job_id:
                raise StaleSegment(segment_id)
            if item.generation == job_id:
                return item.retired_generation
            writes = int(item.pending_writes or 0)  # read before counting: a write after it fails the flip
            values = {
                **fields,
                "member_count": self.count_members(segment_id, job_id),
                "generation": job_id,
                "retired_generation": item.generation,
                "pending_writes": None,
            }
            actions = [
                getattr(SegmentItem, name).set(value) if value is not None else getattr(SegmentItem, name).remove()
                for name, value in values.items()
            ]
            unchanged = SegmentItem.pending_writes == writes if writes else SegmentItem.pending_writes.does_not_exist()
            try:
                SegmentItem(*segment_key(self.tenant_id, segment_id)).update(
                    actions=actions, condition=(SegmentItem.job_id == job_id) & unchanged
                )
            except UpdateError as error:
                if error.cause_response_code == "ConditionalCheckFailedException":
                    continue  # superseded (the next read says so) or a real-time write landed: count again
                raise
            return item.generation

    def count_members(self, segment_id: str, generation: str) -> int:
        return len(self.members(segment_id, generation))

    def delete_generation(self, segment_id: str, generation: str) -> None:
        items = MainTableModel.query(
            _own_pk(self.tenant_id, segment_id),
            MainTableModel.sk.startswith(f"M#{generation}#"),
            attributes_to_get=["pk", "sk"],
        )
        with MainTableModel.batch_write() as batch:
            for item in items:
                batch.delete(item)

    def members(self, segment_id: str, generation: str) -> set[int]:
        found: set[int] = set()
        for item in MemberChunkItem.query(
            _own_pk(self.tenant_id, segment_id), MemberChunkItem.sk.startswith(f"M#{generation}#")
        ):
            found |= {int(o) for o in item.ordinals or ()}
        return found

    def page_of_members(
        self, segment_id: str, generation: str, limit: int, position: dict[str, Any] | None
    ) -> tuple[list[int], dict[str, Any] | None]:
        """Member ordinals in (shard, ordinal) order; the position is the chunk and ordinal served last.

        Positions name the chunk by shard and range, not by generation, so a listing
        that spans a re-evaluation carries on from the same place in the new one.
        """
        prefix = f"M#{generation}#"
        after_chunk = (position or {}).get("chunk")
        after_ordinal = int((position or {}).get("after", -1))
        condition: Condition = (
            MemberChunkItem.sk.between(prefix + after_chunk, prefix + "~")
            if after_chunk
            else MemberChunkItem.sk.startswith(prefix)
        )
        ordinals: list[int] = []
        last_chunk = ""
        for item in MemberChunkItem.query(_own_pk(self.tenant_id, segment_id), condition, page_size=4):
            chunk = item.sk[len(prefix) :]
            members_here = sorted(int(o) for o in item.ordinals or ())
            if chunk == after_chunk:
                members_here = [o for o in members_here if o > after_ordinal]
            for ordinal in members_here:
                if len(ordinals) == limit:
                    return ordinals, {"chunk": last_chunk, "after": ordinals[-1]}
                ordinals.append(ordinal)
                last_chunk = chunk
        return ordinals, None

    def shard_members(self, segment_id: str, generation: str, shard: int) -> set[int]:
        """Members of one shard (a campaign builds its audience shard by shard)."""
        found: set[int] = set()
        for item in MemberChunkItem.query(
            _own_pk(self.tenant_id, segment_id),
            MemberChunkItem.sk.startswith(f"M#{generation}#{shard:02d}#"),
            consistent_read=True,
        ):
            found |= {int(o) for o in item.ordinals or ()}
        return found

    def count_transition(
        self, segment_id: str, day: str, entered: bool, event_id: str, members: int | None, kept_until: int
    ) -> bool:
        pk = _own_pk(self.tenant_id, segment_id)
        counter = SizePointItem.entered if entered else SizePointItem.exited
        actions: list[Action] = [counter.add(1), SizePointItem.expires_at.set(kept_until)]
        if members is not None:
            actions.append(SizePointItem.members.set(members))
        point = SizePointItem(pk, f"H#{day}")
        return apply_once(
            pk, f"HSEEN#{event_id}", COUNTED_EVENT_KEPT_SECONDS, lambda transaction: transaction.update(point, actions)
        )

    def record_members(self, segment_id: str, day: str, members: int, kept_until: int) -> None:
        SizePointItem(_own_pk(self.tenant_id, segment_id), f"H#{day}").update(
            actions=[SizePointItem.members.set(members), SizePointItem.expires_at.set(kept_until)]
        )

    def size_points(self, segment_id: str) -> list[SizePoint]:
        items = SizePointItem.query(_own_pk(self.tenant_id, segment_id), SizePointItem.sk.startswith("H#"))
        return [
            SizePoint(
                item.sk[2:],
                None if item.members is None else int(item.members),
                int(item.entered or 0),
                int(item.exited or 0),
            )
            for item in items
        ]


def time_dependent_segments() -> list[tuple[str, str]]:
    """(tenant, segment) of every segment whose membership time alone changes, for the refresh schedule.

    A sparse index holding only those segments: the schedule reads it, never the tenants' data."""
    return [_pair(item.gsi1sk) for item in SegmentItem.gsi1.query(TIME_DEPENDENT)]


def _pair(sort_key: str) -> tuple[str, str]:
    tenant_id, segment_id = sort_key.split("#", 1)
    return tenant_id, segment_id


# --- membership ---------------------------------------------------------------------------------------


def _chunk_of(ordinal: int) -> int:
    return (ordinal // SHARDS) // MEMBER_CHUNK


def chunk_key(tenant_id: str, segment_id: str, generation: str, ordinal: int) -> tuple[str, str]:
    """The membership chunk of one generation that holds (or would hold) ``ordinal``."""
    return _own_pk(tenant_id, segment_id), f"M#{generation}#{ordinal % SHARDS:02d}#{_chunk_of(ordinal):04d}"
