"""Triggers, their runs, what they have fired, and the contacts' personal announcements.

| item | pk | sk |
| --- | --- | --- |
| trigger | ``TENANT#{t}`` | ``TRIGGER#{id}`` |
| run of a trigger | ``TENANT#{t}#TRIGGER#{id}`` | ``RUN#{run_id}`` |
| batch of a scheduled or manual run | ``TENANT#{t}#TRIGGER#{id}`` | ``RB#{run_id}#{n:05d}`` |
| firing (trigger, contact, cause) done | ``TENANT#{t}#SHARD#{nn}`` | ``TF#{trigger}#{contact}#{hash}`` |
| email a trigger claimed for a firing | ``TENANT#{t}#SHARD#{nn}`` | ``TM#{trigger}#{contact}#{hash}`` |
| announcement shown to one contact | ``TENANT#{t}#SHARD#{nn}`` | ``PA#{contact_id}#{announcement_id}`` |

Enabled schedule triggers are also in the sparse gsi1 partition
``TRIGGERS#SCHEDULED`` (sort key ``{next_run_at}#{tenant}#{trigger}``), which the
minute schedule reads. Event-driven firings are counted in one run per trigger
and UTC day (``run_events_YYYYMMDD``); each scheduled or manual run has its own.

A **firing** record is written, together with the run's counters, in one
transaction conditioned on its absence: a redelivered occurrence finds it and
applies nothing, and counts are never doubled. The actions themselves are
idempotent per cause (tags are sets, a reward's id derives from the cause, an
email is claimed before SES), so a crash between them and the record is
repaired by doing them again.
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.contacts import ordinal_of, shard_of
from chalicelib.domain.triggers import RUN_COUNTERS, Run, StaleTrigger, Trigger
from chalicelib.storage.mapping import Mapper
from chalicelib.storage.table import Gsi1, MainTableModel, cancellation_reasons, connection, shard_pk
from chalicelib.storage.tenants import tenant_pk

SCHEDULED_INDEX = "TRIGGERS#SCHEDULED"


class TriggerItem(MainTableModel):
    trigger_id = UnicodeAttribute()
    name = UnicodeAttribute()
    enabled = UnicodeAttribute()  # "true" / "false"
    event = UnicodeAttribute()  # JSON
    conditions = UnicodeAttribute(null=True)  # JSON criteria
    actions = UnicodeAttribute()  # JSON list
    status_reason = UnicodeAttribute(null=True)
    next_run_at = UnicodeAttribute(null=True)
    version = NumberAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi1 = Gsi1()


class RunItem(MainTableModel):
    run_id = UnicodeAttribute()
    kind = UnicodeAttribute()  # events / schedule / manual
    started_at = UnicodeAttribute()
    finished_at = UnicodeAttribute(null=True)
    batches_total = NumberAttribute(null=True)
    batches_done = NumberAttribute(null=True)
    contacts = NumberAttribute(null=True)
    applied = NumberAttribute(null=True)
    skipped = NumberAttribute(null=True)
    stopped = NumberAttribute(null=True)
    failed = NumberAttribute(null=True)
    note = UnicodeAttribute(null=True)


class RunBatchItem(MainTableModel):
    contacts = UnicodeAttribute()  # JSON list of contact ids
    done = NumberAttribute(null=True)


class FiringItem(MainTableModel):
    at = UnicodeAttribute()


class TriggerMailItem(MainTableModel):
    state = UnicodeAttribute()  # claimed / sent / failed / suppressed
    message_id = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)


class PersonalAnnouncementItem(MainTableModel):
    announcement_id = UnicodeAttribute()
    at = UnicodeAttribute()


def _key(tenant_id: str, trigger_id: str) -> tuple[str, str]:
    return tenant_pk(tenant_id), f"TRIGGER#{trigger_id}"


def _own_pk(tenant_id: str, trigger_id: str) -> str:
    return f"TENANT#{tenant_id}#TRIGGER#{trigger_id}"


TRIGGER_MAPPER = Mapper(Trigger, TriggerItem, renamed={"id": "trigger_id"})
"""Trigger fields are TriggerItem attributes of the same names (storage/mapping.py)."""
_trigger = TRIGGER_MAPPER.entity


def _item(tenant_id: str, trigger: Trigger) -> TriggerItem:
    scheduled = trigger.enabled and trigger.next_run_at is not None
    return TriggerItem(
        *_key(tenant_id, trigger.id),
        **TRIGGER_MAPPER.attributes(trigger),
        gsi1pk=SCHEDULED_INDEX if scheduled else None,
        gsi1sk=f"{trigger.next_run_at}#{tenant_id}#{trigger.id}" if scheduled else None,
    )


def due_scheduled(before: str) -> list[tuple[str, str]]:
    """(tenant, trigger) of every enabled schedule trigger whose next run is at or before ``before``."""
    found = TriggerItem.gsi1.query(SCHEDULED_INDEX, TriggerItem.gsi1sk <= f"{before}#~")
    return [(item.gsi1sk.split("#")[1], item.trigger_id) for item in found]


RUN_MAPPER = Mapper(Run, RunItem, renamed={"id": "run_id"}, spread={"counters": RUN_COUNTERS})
"""Run fields are RunItem attributes of the same names, each counter one of its own (storage/mapping.py)."""
_run = RUN_MAPPER.entity


def _zero_counters() -> dict[str, Any]:
    return dict.fromkeys(RUN_COUNTERS, 0)


def _counter_actions(counts: dict[str, int]) -> list[Any]:
    return [getattr(RunItem, name).add(value) for name, value in counts.items() if value]


def _firing_key(tenant_id: str, contact_id: str, key: str) -> tuple[str, str]:
    ordinal = ordinal_of(contact_id)
    assert ordinal is not None
    return shard_pk(tenant_id, shard_of(ordinal)), f"TF#{key}"


class TriggerTable:
    """The TriggerRepository port on DynamoDB, bound to one tenant: triggers, their runs, firings, emails and
    personal announcements."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def create(self, trigger: Trigger) -> None:
        _item(self.tenant_id, trigger).save(condition=TriggerItem.pk.does_not_exist())

    def save(self, before: Trigger, after: Trigger) -> None:
        """Replace it whole if nobody changed it since ``before`` was read."""
        try:
            _item(self.tenant_id, after).save(condition=TriggerItem.version == before.version)
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                raise StaleTrigger(before.id) from error
            raise

    def get(self, trigger_id: str) -> Trigger | None:
        try:
            return _trigger(TriggerItem.get(*_key(self.tenant_id, trigger_id), consistent_read=True))
        except DoesNotExist:
            return None

    def page(self, limit: int, start: dict[str, Any] | None) -> tuple[list[Trigger], dict[str, Any] | None]:
        result = TriggerItem.query(
            tenant_pk(self.tenant_id), TriggerItem.sk.startswith("TRIGGER#"), limit=limit, last_evaluated_key=start
        )
        return [_trigger(item) for item in result], result.last_evaluated_key

    def all_triggers(self) -> list[Trigger]:
        return [
            _trigger(i) for i in TriggerItem.query(tenant_pk(self.tenant_id), TriggerItem.sk.startswith("TRIGGER#"))
        ]

    def delete(self, trigger: Trigger) -> None:
        try:
            TriggerItem(*_key(self.tenant_id, trigger.id)).delete(condition=TriggerItem.version == trigger.version)
        except DeleteError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                raise StaleTrigger(trigger.id) from error
            raise

    def advance_schedule(self, trigger: Trigger, next_run_at: str) -> bool:
        """Move the trigger's next run from the one it had to ``next_run_at``; False if another worker did."""
        try:
            _item(self.tenant_id, trigger).update(
                actions=[
                    TriggerItem.next_run_at.set(next_run_at),
                    TriggerItem.gsi1sk.set(f"{next_run_at}#{self.tenant_id}#{trigger.id}"),
                ],
                condition=TriggerItem.next_run_at == trigger.next_run_at,
            )
            return True
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise

    def start_run(self, trigger_id: str, run: Run, batches: list[list[str]]) -> bool:
        """Write the run and its batches (the snapshot of whom it acts on), the run last: written means complete.
        False if the run existed already."""
        pk = _own_pk(self.tenant_id, trigger_id)
        with RunBatchItem.batch_write() as writer:
            for number, contacts in enumerate(batches):
                writer.save(RunBatchItem(pk, f"RB#{run.id}#{number:05d}", contacts=json.dumps(contacts)))
        item = RunItem(
            pk,
            f"RUN#{run.id}",
            run_id=run.id,
            kind=run.kind,
            started_at=run.started_at,
            finished_at=run.finished_at,
            batches_total=len(batches),
            batches_done=0,
            note=run.note,
            **_zero_counters(),
        )
        try:
            item.save(condition=RunItem.pk.does_not_exist())
            return True
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise

    def get_run(self, trigger_id: str, run_id: str) -> Run | None:
        try:
            return _run(RunItem.get(_own_pk(self.tenant_id, trigger_id), f"RUN#{run_id}", consistent_read=True))
        except DoesNotExist:
            return None

    def runs_page(
        self, trigger_id: str, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[Run], dict[str, Any] | None]:
        result = RunItem.query(
            _own_pk(self.tenant_id, trigger_id),
            RunItem.sk.startswith("RUN#"),
            limit=limit,
            last_evaluated_key=start,
            scan_index_forward=False,
        )
        return [_run(item) for item in result], result.last_evaluated_key

    def batch_contacts(self, trigger_id: str, run_id: str, number: int) -> tuple[list[str], bool]:
        """A batch's contact ids, and whether it is already done."""
        item = RunBatchItem.get(_own_pk(self.tenant_id, trigger_id), f"RB#{run_id}#{number:05d}", consistent_read=True)
        return json.loads(item.contacts), bool(item.done)

    def finish_batch(self, trigger_id: str, run_id: str, number: int, counts: dict[str, int], at: str) -> bool:
        """Mark the batch done and add its counts to the run, once; False if it was done before."""
        pk = _own_pk(self.tenant_id, trigger_id)
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.update(
                    RunBatchItem(pk, f"RB#{run_id}#{number:05d}"),
                    actions=[RunBatchItem.done.set(1)],
                    condition=RunBatchItem.done.does_not_exist(),
                )
                transaction.update(
                    RunItem(pk, f"RUN#{run_id}"), actions=[RunItem.batches_done.add(1), *_counter_actions(counts)]
                )
        except TransactWriteError as error:
            if "ConditionalCheckFailed" in cancellation_reasons(error):
                return False
            raise
        return True

    def finish_run_if_complete(self, trigger_id: str, run_id: str, at: str) -> bool:
        """Stamp the run finished once every batch is done (called after each batch, and again by redeliveries)."""
        try:
            RunItem(_own_pk(self.tenant_id, trigger_id), f"RUN#{run_id}").update(
                actions=[RunItem.finished_at.set(at)],
                condition=(RunItem.batches_done >= RunItem.batches_total) & RunItem.finished_at.does_not_exist(),
            )
            return True
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            return False

    def has_fired(self, contact_id: str, key: str) -> bool:
        try:
            FiringItem.get(
                *_firing_key(self.tenant_id, contact_id, key), consistent_read=True, attributes_to_get=["pk"]
            )
            return True
        except DoesNotExist:
            return False

    def record_firing(
        self, trigger_id: str, contact_id: str, key: str, run: Run, counts: dict[str, int], at: str
    ) -> bool:
        """The firing is done: write its record and add ``counts`` to the day's events run, once."""
        pk = _own_pk(self.tenant_id, trigger_id)
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.save(
                    FiringItem(*_firing_key(self.tenant_id, contact_id, key), at=at),
                    condition=FiringItem.pk.does_not_exist(),
                )
                transaction.update(
                    RunItem(pk, f"RUN#{run.id}"),
                    actions=[
                        RunItem.run_id.set(run.id),
                        RunItem.kind.set(run.kind),
                        RunItem.started_at.set(RunItem.started_at | run.started_at),
                        *_counter_actions(counts),
                    ],
                )
        except TransactWriteError as error:
            if "ConditionalCheckFailed" in cancellation_reasons(error):
                return False
            raise
        return True

    def claim_mail(self, contact_id: str, key: str) -> bool:
        """Claim the email of a firing before calling SES; False if it was claimed before (never send twice)."""
        pk, sk = _firing_key(self.tenant_id, contact_id, key)
        try:
            TriggerMailItem(pk, "TM#" + sk[3:], state="claimed").save(condition=TriggerMailItem.pk.does_not_exist())
            return True
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise

    def settle_mail(self, contact_id: str, key: str, state: str, message_id: str | None, reason: str | None) -> None:
        pk, sk = _firing_key(self.tenant_id, contact_id, key)
        TriggerMailItem(pk, "TM#" + sk[3:], state=state, message_id=message_id, reason=reason).save()

    def release_mail(self, contact_id: str, key: str) -> None:
        """SES did not take it (throttled, quota, paused): the email may be tried again by a redelivery."""
        pk, sk = _firing_key(self.tenant_id, contact_id, key)
        TriggerMailItem(pk, "TM#" + sk[3:]).delete(condition=TriggerMailItem.state == "claimed")

    def give_announcement(self, contact_id: str, announcement_id: str, at: str) -> None:
        ordinal = ordinal_of(contact_id)
        assert ordinal is not None
        PersonalAnnouncementItem(
            shard_pk(self.tenant_id, shard_of(ordinal)),
            f"PA#{contact_id}#{announcement_id}",
            announcement_id=announcement_id,
            at=at,
        ).save()

    def personal_announcements(self, contact_id: str, ordinal: int) -> set[str]:
        pk = shard_pk(self.tenant_id, shard_of(ordinal))
        return {
            i.announcement_id
            for i in PersonalAnnouncementItem.query(pk, PersonalAnnouncementItem.sk.startswith(f"PA#{contact_id}#"))
        }
