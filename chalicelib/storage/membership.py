"""One contact's membership: its stamp, its slots in member chunks, and its event outbox.

| item | pk | sk |
| --- | --- | --- |
| membership stamp of a contact | ``TENANT#{t}#SHARD#{nn}`` | ``MS#{contact_id}`` |
| entered/exited event not yet queued | ``TENANT#{t}#SHARD#{nn}`` | ``MO#{contact_id}#{event_id}`` |

An event not yet queued is also in the sparse gsi1 partition ``MEMBERSHIP-OUTBOX#{nn}`` (one per shard
number), sort key ``{at}#{tenant}#{contact_id}#{event_id}``: the minute relay finds there what an update
that stopped between its commit and its queueing left behind.

The **stamp** serialises the real-time updates of one contact: each update reads
its ``seq``, computes, and commits only if ``seq`` is unchanged (otherwise it
starts again from fresh reads), so an update computed from an older view of the
contact never lands after a newer one. It also remembers, per membership
generation, whether the contact is in it (``known``), so the next change of the
same contact needs no chunk read; a full evaluation makes a new generation,
which the stamp does not know yet. Full-evaluation workers read stamps changed
since their shard read to catch contacts that changed under them.

**Outbox** items are written in the same transaction as the transition they
announce and deleted once queued, so an event is never lost between the write
and the queue; a crash after queueing re-queues it with the same id, through the relay.
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.domain.contacts import shard_of
from chalicelib.domain.membership import MembershipCommit, Stamp, Superseded
from chalicelib.storage.segments import MemberChunkItem, SegmentItem, chunk_key, segment_key
from chalicelib.storage.table import (
    Gsi1,
    MainTableModel,
    cancellation_reasons,
    connection,
    older_in_shard_index,
    shard_pk,
)


class StampItem(MainTableModel):
    contact_id = UnicodeAttribute()
    seq = NumberAttribute()
    known: MapAttribute[str, Any] = MapAttribute(null=True)  # generation → 1 (member) / 0 (not)
    changed_at = UnicodeAttribute()


class OutboxItem(MainTableModel):
    body = UnicodeAttribute()
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi1 = Gsi1()


RELAY_INDEX = "MEMBERSHIP-OUTBOX#"


def left_unqueued(before: str, limit: int = 500) -> list[tuple[str, str]]:
    """(tenant, contact) of the contacts with membership events stored before ``before`` (RFC 3339) and
    still not queued, oldest first per shard (one sparse index across tenants: the minute relay)."""
    found: dict[tuple[str, str], None] = {}
    for item in older_in_shard_index(OutboxItem, RELAY_INDEX, before, page_size=limit):
        _, tenant_id, contact_id, _ = item.gsi1sk.split("#")
        found[(tenant_id, contact_id)] = None
        if len(found) >= limit:
            break
    return list(found)


def _stamp_key(tenant_id: str, contact_id: str, ordinal: int) -> tuple[str, str]:
    return shard_pk(tenant_id, shard_of(ordinal)), f"MS#{contact_id}"


def _stamp(item: StampItem) -> Stamp:
    known = item.known.as_dict() if item.known else {}
    return Stamp(int(item.seq), {generation: bool(value) for generation, value in known.items()})


class MembershipTable:
    """The MembershipLedger port on DynamoDB, bound to one tenant."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def read_stamps(self, contacts: list[tuple[str, int]]) -> dict[str, Stamp]:
        keys = {_stamp_key(self.tenant_id, contact_id, ordinal): contact_id for contact_id, ordinal in contacts}
        found = {contact_id: Stamp() for contact_id in keys.values()}
        for item in StampItem.batch_get(list(keys), consistent_read=True):
            found[keys[(item.pk, item.sk)]] = _stamp(item)
        return found

    def memberships(self, ordinals: list[int], places: list[tuple[str, str]]) -> dict[int, dict[tuple[str, str], bool]]:
        """Whether each contact is in each (segment, generation), from the member chunks (one batch read: contacts
        of a chunk share its item)."""
        keys = {
            chunk_key(self.tenant_id, segment_id, generation, ordinal): (segment_id, generation)
            for ordinal in ordinals
            for segment_id, generation in places
        }
        holding: dict[tuple[str, str], set[int]] = {place: set() for place in places}
        for item in MemberChunkItem.batch_get(list(keys), consistent_read=True):
            holding[keys[(item.pk, item.sk)]] |= {int(o) for o in item.ordinals or ()}
        return {ordinal: {place: ordinal in holding[place] for place in places} for ordinal in ordinals}

    def commit(self, change: MembershipCommit) -> None:
        """Apply the moves, counts and outbox events in one transaction, if nothing changed since the stamp."""
        contact_id, ordinal, stamp, known = change.contact_id, change.ordinal, change.stamp, change.known
        moves, checks, events, changed_at = change.moves, change.checks, change.events, change.changed_at
        stamp_item = StampItem(*_stamp_key(self.tenant_id, contact_id, ordinal))
        pk = stamp_item.pk
        try:
            with TransactWrite(connection=connection()) as transaction:
                condition = StampItem.seq == stamp.seq if stamp.seq else StampItem.pk.does_not_exist()
                transaction.update(
                    stamp_item,
                    actions=[
                        StampItem.contact_id.set(contact_id),
                        StampItem.seq.set(stamp.seq + 1),
                        StampItem.known.set({generation: int(member) for generation, member in known.items()}),
                        StampItem.changed_at.set(changed_at),
                    ],
                    condition=condition,
                )
                for move in moves:
                    chunk = MemberChunkItem(*chunk_key(self.tenant_id, move.segment_id, move.generation, ordinal))
                    action = MemberChunkItem.ordinals.add if move.enter else MemberChunkItem.ordinals.delete
                    transaction.update(chunk, actions=[action({ordinal})])
                for check in checks:
                    condition = (
                        SegmentItem.generation == check.generation
                        if check.generation
                        else SegmentItem.generation.does_not_exist()
                    )
                    condition &= (
                        SegmentItem.job_id == check.job_id if check.job_id else SegmentItem.job_id.does_not_exist()
                    )
                    actions: list[Action] = []
                    if check.count_delta:
                        actions.append(SegmentItem.member_count.add(check.count_delta))
                    if check.pending:
                        actions.append(SegmentItem.pending_writes.add(1))
                    item = SegmentItem(*segment_key(self.tenant_id, check.segment_id))
                    if actions:
                        transaction.update(item, actions=actions, condition=condition)
                    else:
                        transaction.condition_check(SegmentItem, item.pk, item.sk, condition=condition)
                for event in events:
                    transaction.save(
                        OutboxItem(
                            pk,
                            f"MO#{contact_id}#{event['id']}",
                            body=json.dumps(event),
                            gsi1pk=f"{RELAY_INDEX}{shard_of(ordinal):02d}",
                            gsi1sk=f"{changed_at}#{self.tenant_id}#{contact_id}#{event['id']}",
                        )
                    )
        except TransactWriteError as error:
            reasons = cancellation_reasons(error)
            if "ConditionalCheckFailed" in reasons or "TransactionConflict" in reasons:
                raise Superseded(contact_id) from error
            raise

    def pending_events(self, contact_id: str, ordinal: int) -> list[dict[str, Any]]:
        """Membership events a commit left to send (each has its ``id``)."""
        items = OutboxItem.query(
            shard_pk(self.tenant_id, shard_of(ordinal)),
            OutboxItem.sk.startswith(f"MO#{contact_id}#"),
            consistent_read=True,
        )
        return [json.loads(item.body) for item in items]

    def forget_events(self, contact_id: str, ordinal: int, event_ids: list[str]) -> None:
        pk = shard_pk(self.tenant_id, shard_of(ordinal))
        with OutboxItem.batch_write() as batch:
            for event_id in event_ids:
                batch.delete(OutboxItem(pk, f"MO#{contact_id}#{event_id}"))

    def stamps_changed_since(self, shard: int, moment: str) -> list[str]:
        """Ids of the shard's contacts whose membership was updated at or after ``moment``."""
        items = StampItem.query(
            shard_pk(self.tenant_id, shard),
            StampItem.sk.startswith("MS#"),
            filter_condition=StampItem.changed_at >= moment,
            consistent_read=True,
            attributes_to_get=["contact_id"],
        )
        return [item.contact_id for item in items]
