"""Journeys, the versions of their definitions, the contacts' positions and the counters.

| item | pk | sk |
| --- | --- | --- |
| journey (current definition) | ``TENANT#{t}`` | ``JOURNEY#{id}`` |
| a version of its definition | ``TENANT#{t}#JOURNEY#{id}`` | ``V#{version:06d}`` |
| a step's counters, one item per contact shard | ``TENANT#{t}#JOURNEY#{id}`` | ``S#{nn}#{step}`` |
| the journey's counters, one item per contact shard | ``TENANT#{t}#JOURNEY#{id}`` | ``J#{nn}`` |
| a contact's position | ``TENANT#{t}#SHARD#{nn}`` | ``JP#{journey}#{contact}`` |

A running journey with a schedule entry is in the sparse gsi1 index ``JOURNEYS#SCHEDULED`` (sort key
``{next_run_at}#{tenant}#{journey}``), read by the same minute schedule. A position that waits is in the
sparse gsi1 index ``JOURNEYS#DUE#{nn}`` (one partition per contact shard,
sort key ``{due_at}#{tenant}#{journey}#{contact}``), which the minute schedule reads for the waits that are
over. A move writes the position conditioned on the revision it read, with the counters it changes, in one
transaction: counters are spread over the contact's shard, so thousands of contacts moving at once do not
all contend for one item.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, replace
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.contacts import ordinal_of, shard_of
from chalicelib.domain.journeys import (
    DEFINITION,
    JOURNEY_COUNTERS,
    RUNNING,
    STEP_COUNTERS,
    Journey,
    Position,
    StaleJourney,
)
from chalicelib.storage.table import (
    Gsi1,
    MainTableModel,
    cancellation_reasons,
    connection,
    older_in_shard_index,
    shard_pk,
)
from chalicelib.storage.tenants import tenant_pk

DUE_INDEX = "JOURNEYS#DUE#"
SCHEDULED_INDEX = "JOURNEYS#SCHEDULED"
_CONFLICT_ATTEMPTS = 5


class JourneyItem(MainTableModel):
    journey_id = UnicodeAttribute()
    name = UnicodeAttribute()
    status = UnicodeAttribute()
    definition = UnicodeAttribute()  # JSON: entry, reentry, exit, holdout, goal, start, steps
    version = NumberAttribute()
    revision = NumberAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    status_reason = UnicodeAttribute(null=True)
    next_run_at = UnicodeAttribute(null=True)
    moved_to = NumberAttribute(null=True)
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi1 = Gsi1()


class JourneyVersionItem(MainTableModel):
    name = UnicodeAttribute()
    definition = UnicodeAttribute()


class JourneyCounterItem(MainTableModel):
    step = UnicodeAttribute(null=True)
    entered = NumberAttribute(null=True)
    completed = NumberAttribute(null=True)
    exited = NumberAttribute(null=True)
    converted = NumberAttribute(null=True)
    holdout_entered = NumberAttribute(null=True)
    holdout_converted = NumberAttribute(null=True)


class PositionItem(MainTableModel):
    body = UnicodeAttribute()  # JSON of the Position
    revision = NumberAttribute()
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi1 = Gsi1()


def _own_pk(tenant_id: str, journey_id: str) -> str:
    return f"TENANT#{tenant_id}#JOURNEY#{journey_id}"


def _shard(contact_id: str) -> int:
    ordinal = ordinal_of(contact_id)
    assert ordinal is not None
    return shard_of(ordinal)


def _journey(item: JourneyItem) -> Journey:
    return Journey(
        id=item.journey_id,
        name=item.name,
        status=item.status,
        version=int(item.version),
        revision=int(item.revision),
        created_at=item.created_at,
        updated_at=item.updated_at,
        status_reason=item.status_reason,
        next_run_at=item.next_run_at,
        moved_to=int(item.moved_to) if item.moved_to is not None else None,
        **json.loads(item.definition),
    )


def _definition(journey: Journey) -> str:
    return json.dumps({name: getattr(journey, name) for name in DEFINITION}, separators=(",", ":"))


def _item(tenant_id: str, journey: Journey) -> JourneyItem:
    scheduled = journey.status == RUNNING and journey.next_run_at is not None
    return JourneyItem(
        tenant_pk(tenant_id),
        f"JOURNEY#{journey.id}",
        journey_id=journey.id,
        name=journey.name,
        status=journey.status,
        definition=_definition(journey),
        version=journey.version,
        revision=journey.revision,
        created_at=journey.created_at,
        updated_at=journey.updated_at,
        status_reason=journey.status_reason,
        next_run_at=journey.next_run_at,
        moved_to=journey.moved_to,
        gsi1pk=SCHEDULED_INDEX if scheduled else None,
        gsi1sk=f"{journey.next_run_at}#{tenant_id}#{journey.id}" if scheduled else None,
    )


def _version_item(tenant_id: str, journey: Journey) -> JourneyVersionItem:
    return JourneyVersionItem(
        _own_pk(tenant_id, journey.id), f"V#{journey.version:06d}", name=journey.name, definition=_definition(journey)
    )


def _position(item: PositionItem) -> Position:
    body = json.loads(item.body)
    return Position(**{**body, "history": tuple(body.get("history") or ())})


def _position_item(tenant_id: str, position: Position) -> PositionItem:
    shard = _shard(position.contact_id)
    due = position.due_at is not None and not position.finished  # a wait, or a run an email made wait
    return PositionItem(
        shard_pk(tenant_id, shard),
        f"JP#{position.journey_id}#{position.contact_id}",
        body=json.dumps(asdict(position), separators=(",", ":")),
        revision=position.revision,
        gsi1pk=f"{DUE_INDEX}{shard:02d}" if due else None,
        gsi1sk=f"{position.due_at}#{tenant_id}#{position.journey_id}#{position.contact_id}" if due else None,
    )


def due_positions(before: str, page_size: int = 500) -> list[tuple[str, str, str]]:
    """(tenant, journey, contact) of every waiting position due before ``before``, across tenants."""
    found = []
    for item in older_in_shard_index(PositionItem, DUE_INDEX, f"{before}#~", page_size):
        _, tenant_id, journey_id, contact_id = item.gsi1sk.split("#")
        found.append((tenant_id, journey_id, contact_id))
    return found


def due_scheduled(before: str) -> list[tuple[str, str]]:
    """(tenant, journey) of the running schedule journeys whose next run is due at ``before``, across tenants."""
    found = []
    for item in JourneyItem.gsi1.query(SCHEDULED_INDEX, JourneyItem.gsi1sk < f"{before}#~"):
        _, tenant_id, journey_id = item.gsi1sk.split("#")
        found.append((tenant_id, journey_id))
    return found


class JourneyTable:
    """The JourneyRepository port on DynamoDB, bound to one tenant."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def create(self, journey: Journey) -> None:
        with TransactWrite(connection=connection()) as transaction:
            transaction.save(_item(self.tenant_id, journey), condition=JourneyItem.pk.does_not_exist())
            transaction.save(_version_item(self.tenant_id, journey))

    def save(self, before: Journey, after: Journey) -> None:
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.save(_item(self.tenant_id, after), condition=JourneyItem.revision == before.revision)
                if after.version != before.version:
                    transaction.save(_version_item(self.tenant_id, after))
        except TransactWriteError as error:
            if "ConditionalCheckFailed" in cancellation_reasons(error):
                raise StaleJourney(before.id) from error
            raise

    def advance_schedule(self, journey: Journey, next_run_at: str) -> bool:
        """Move the journey's next run on (a new revision); False if another worker did, or the journey changed
        meanwhile (the next minute reads it again)."""
        after = replace(journey, next_run_at=next_run_at, revision=journey.revision + 1)
        try:
            _item(self.tenant_id, after).save(condition=JourneyItem.revision == journey.revision)
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get(self, journey_id: str) -> Journey | None:
        try:
            return _journey(JourneyItem.get(tenant_pk(self.tenant_id), f"JOURNEY#{journey_id}", consistent_read=True))
        except DoesNotExist:
            return None

    def definition(self, journey_id: str, version: int) -> Journey | None:
        current = self.get(journey_id)
        if current is None or current.version == version:
            return current
        try:
            item = JourneyVersionItem.get(_own_pk(self.tenant_id, journey_id), f"V#{version:06d}", consistent_read=True)
        except DoesNotExist:
            return None
        return replace(current, name=item.name, version=version, **json.loads(item.definition))

    def page(self, limit: int, start: dict[str, Any] | None) -> tuple[list[Journey], dict[str, Any] | None]:
        result = JourneyItem.query(
            tenant_pk(self.tenant_id), JourneyItem.sk.startswith("JOURNEY#"), limit=limit, last_evaluated_key=start
        )
        return [_journey(item) for item in result], result.last_evaluated_key

    def all_journeys(self) -> list[Journey]:
        query = JourneyItem.query(tenant_pk(self.tenant_id), JourneyItem.sk.startswith("JOURNEY#"))
        return [_journey(item) for item in query]

    def delete(self, journey: Journey) -> None:
        try:
            JourneyItem(tenant_pk(self.tenant_id), f"JOURNEY#{journey.id}").delete(
                condition=JourneyItem.revision == journey.revision
            )
        except DeleteError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                raise StaleJourney(journey.id) from error
            raise
        own = JourneyCounterItem.query(_own_pk(self.tenant_id, journey.id), attributes_to_get=["pk", "sk"])
        with JourneyCounterItem.batch_write() as writer:
            for item in own:
                writer.delete(item)

    def position(self, journey_id: str, contact_id: str) -> Position | None:
        try:
            item = PositionItem.get(
                shard_pk(self.tenant_id, _shard(contact_id)), f"JP#{journey_id}#{contact_id}", consistent_read=True
            )
        except DoesNotExist:
            return None
        return _position(item)

    def positions(self, journey_id: str, contact_ids: list[str]) -> dict[str, Position]:
        keys = [(shard_pk(self.tenant_id, _shard(c)), f"JP#{journey_id}#{c}") for c in dict.fromkeys(contact_ids)]
        return {
            position.contact_id: position
            for position in map(_position, PositionItem.batch_get(keys, consistent_read=True))
        }

    def move(
        self, before: Position | None, after: Position, steps: dict[tuple[str, str], int], journey: dict[str, int]
    ) -> bool:
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                self._move_once(before, after, steps, journey)
                return True
            except TransactWriteError as error:
                reasons = cancellation_reasons(error)
                if "ConditionalCheckFailed" in reasons:
                    return False
                if "TransactionConflict" not in reasons or attempt == _CONFLICT_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
        return False

    def _move_once(
        self, before: Position | None, after: Position, steps: dict[tuple[str, str], int], journey: dict[str, int]
    ) -> None:
        pk = _own_pk(self.tenant_id, after.journey_id)
        shard = _shard(after.contact_id)
        condition = PositionItem.pk.does_not_exist() if before is None else PositionItem.revision == before.revision
        by_step: dict[str, dict[str, int]] = {}
        for (step, counter), value in steps.items():
            by_step.setdefault(step, {})[counter] = value
        with TransactWrite(connection=connection()) as transaction:
            transaction.save(_position_item(self.tenant_id, after), condition=condition)
            for step, counts in by_step.items():
                transaction.update(
                    JourneyCounterItem(pk, f"S#{shard:02d}#{step}"),
                    actions=[
                        JourneyCounterItem.step.set(step),
                        *(getattr(JourneyCounterItem, name).add(value) for name, value in counts.items()),
                    ],
                )
            if journey:
                transaction.update(
                    JourneyCounterItem(pk, f"J#{shard:02d}"),
                    actions=[getattr(JourneyCounterItem, name).add(value) for name, value in journey.items()],
                )

    def drop(self, position: Position) -> None:
        PositionItem(
            shard_pk(self.tenant_id, _shard(position.contact_id)), f"JP#{position.journey_id}#{position.contact_id}"
        ).delete()

    def counters(self, journey_id: str) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        totals = dict.fromkeys(JOURNEY_COUNTERS, 0)
        steps: dict[str, dict[str, int]] = {}
        own = JourneyCounterItem.query(
            _own_pk(self.tenant_id, journey_id), JourneyCounterItem.sk < "V#", consistent_read=True
        )  # J# and S# sort before the versions
        for item in own:
            if item.sk.startswith("J#"):
                for name in JOURNEY_COUNTERS:
                    totals[name] += int(getattr(item, name) or 0)
            elif item.sk.startswith("S#") and item.step is not None:
                counts = steps.setdefault(item.step, dict.fromkeys(STEP_COUNTERS, 0))
                for name in STEP_COUNTERS:
                    counts[name] += int(getattr(item, name) or 0)
        return totals, steps
