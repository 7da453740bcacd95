"""Long-running jobs (imports, bulk tagging): a record with progress counters,
its work chunks, and the problems found per row.

| item | pk | sk |
| --- | --- | --- |
| job | ``TENANT#{t}`` | ``JOB#{job_id}`` |
| chunk of work | ``TENANT#{t}#JOB#{job_id}`` | ``CHUNK#{n}`` |
| row problem | ``TENANT#{t}#JOB#{job_id}`` | ``ERR#{line}`` |
| the tenant's running jobs (its lane) | ``TENANT#{t}`` | ``#JOBLANE`` |

A chunk is finished at most once: its state flips pending → done in the same
transaction that adds its counts to the job, so redelivered work never counts
twice.
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.condition import size
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.domain.jobs import Job
from chalicelib.storage.mapping import Mapper
from chalicelib.storage.table import MainTableModel, cancellation_reasons, connection

COUNTERS = ("processed", "created", "updated", "unchanged", "failed", "contacts", "members", "chunks_done")


class JobItem(MainTableModel):
    job_id = UnicodeAttribute()
    kind = UnicodeAttribute()
    status = UnicodeAttribute()
    total = NumberAttribute(default=0)
    chunks_total = NumberAttribute(default=0)
    chunks_done = NumberAttribute(default=0)
    processed = NumberAttribute(default=0)
    created = NumberAttribute(default=0)
    updated = NumberAttribute(default=0)
    unchanged = NumberAttribute(default=0)
    failed = NumberAttribute(default=0)
    contacts = NumberAttribute(default=0)
    members = NumberAttribute(default=0)
    detail: MapAttribute[str, Any] = MapAttribute(null=True)
    created_at = UnicodeAttribute()
    finished_at = UnicodeAttribute(null=True)


class JobChunkItem(MainTableModel):
    state = UnicodeAttribute()
    payload = UnicodeAttribute()


class JobErrorItem(MainTableModel):
    line = NumberAttribute()
    field = UnicodeAttribute(null=True)
    message = UnicodeAttribute()


def _job_key(tenant_id: str, job_id: str) -> tuple[str, str]:
    return f"TENANT#{tenant_id}", f"JOB#{job_id}"


def _work_pk(tenant_id: str, job_id: str) -> str:
    return f"TENANT#{tenant_id}#JOB#{job_id}"


JOB_MAPPER = Mapper(Job, JobItem, renamed={"id": "job_id"}, spread={"counts": COUNTERS})
"""Job fields are JobItem attributes of the same names, each counter one of its own (storage/mapping.py)."""
_job = JOB_MAPPER.entity


# --- the tenant's lane: how many of its jobs run at once ----------------------------------------------------


class JobLaneItem(MainTableModel):
    running = UnicodeSetAttribute(null=True)


def _lane(tenant_id: str) -> JobLaneItem:
    return JobLaneItem(f"TENANT#{tenant_id}", "#JOBLANE")


class JobTable:
    """The JobRepository port on DynamoDB, bound to one tenant."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def create_job(
        self,
        job: Job,
        chunks: list[Any],
        errors: list[dict[str, Any]],
    ) -> None:
        """Store the job, its chunks and the problems found before any work ran."""
        JobItem(
            *_job_key(self.tenant_id, job.id),
            job_id=job.id,
            kind=job.kind,
            status=job.status,
            total=job.total,
            chunks_total=len(chunks),
            failed=len(errors),
            processed=len(errors),
            detail=job.detail or None,
            created_at=job.created_at,
            finished_at=job.finished_at,
        ).save()
        with JobChunkItem.batch_write() as batch:
            for index, payload in enumerate(chunks):
                batch.save(
                    JobChunkItem(
                        _work_pk(self.tenant_id, job.id),
                        f"CHUNK#{index:05d}",
                        state="pending",
                        payload=json.dumps(payload),
                    )
                )
        self.record_errors(job.id, errors)

    def record_errors(self, job_id: str, errors: list[dict[str, Any]]) -> None:
        with JobErrorItem.batch_write() as batch:
            for error in errors:
                batch.save(
                    JobErrorItem(
                        _work_pk(self.tenant_id, job_id),
                        f"ERR#{error['line']:06d}",
                        line=error["line"],
                        field=error.get("field"),
                        message=error["message"],
                    )
                )

    def get_job(self, job_id: str) -> Job | None:
        try:
            return _job(JobItem.get(*_job_key(self.tenant_id, job_id), consistent_read=True))
        except JobItem.DoesNotExist:
            return None

    def list_jobs(
        self, limit: int, start: dict[str, Any] | None, kind: str | None = None, status: str | None = None
    ) -> tuple[list[Job], dict[str, Any] | None]:
        """Newest first (ids sort by creation time); ``kind`` and ``status`` filter what a page read."""
        condition = None
        if kind is not None:
            condition = JobItem.kind == kind
        if status is not None:
            condition = JobItem.status == status if condition is None else condition & (JobItem.status == status)
        result = JobItem.query(
            f"TENANT#{self.tenant_id}",
            JobItem.sk.startswith("JOB#"),
            filter_condition=condition,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=start,
        )
        return [_job(item) for item in result], result.last_evaluated_key

    def load_chunk(self, job_id: str, index: int) -> tuple[str, Any] | None:
        try:
            item = JobChunkItem.get(_work_pk(self.tenant_id, job_id), f"CHUNK#{index:05d}", consistent_read=True)
        except JobChunkItem.DoesNotExist:
            return None
        return item.state, json.loads(item.payload)

    def finish_chunk(self, job_id: str, index: int, counts: dict[str, int]) -> bool:
        """Mark a chunk done and add its counts to the job, once. False if it was already done."""
        chunk = JobChunkItem(_work_pk(self.tenant_id, job_id), f"CHUNK#{index:05d}")
        job = JobItem(*_job_key(self.tenant_id, job_id))
        actions = [getattr(JobItem, name).add(value) for name, value in counts.items() if value]
        actions.append(JobItem.chunks_done.add(1))
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.update(
                    chunk, actions=[JobChunkItem.state.set("done")], condition=JobChunkItem.state == "pending"
                )
                transaction.update(job, actions=actions)
        except TransactWriteError as error:
            reasons = cancellation_reasons(error)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False
            raise
        return True

    def set_status(self, job_id: str, status: str, *, expected: str, finished_at: str | None = None) -> bool:
        item = JobItem(*_job_key(self.tenant_id, job_id))
        actions: list[Action] = [JobItem.status.set(status)]
        if finished_at:
            actions.append(JobItem.finished_at.set(finished_at))
        try:
            item.update(actions=actions, condition=JobItem.status == expected)
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def list_errors(
        self, job_id: str, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        result = JobErrorItem.query(
            _work_pk(self.tenant_id, job_id), JobErrorItem.sk.startswith("ERR#"), limit=limit, last_evaluated_key=start
        )
        errors = [{"line": int(item.line), "field": item.field, "message": item.message} for item in result]
        return errors, result.last_evaluated_key

    def set_detail(self, job_id: str, detail: dict[str, Any]) -> None:
        JobItem(*_job_key(self.tenant_id, job_id)).update(actions=[JobItem.detail.set(detail)])

    def pending_chunks(self, job_id: str) -> list[int]:
        items = JobChunkItem.query(_work_pk(self.tenant_id, job_id), JobChunkItem.sk.startswith("CHUNK#"))
        return [int(item.sk.split("#", 1)[1]) for item in items if item.state != "done"]

    def enter_lane(self, job_id: str, limit: int) -> bool:
        """Count the job among the tenant's running jobs if fewer than ``limit`` run (or it already does): one
        conditional write; False when the lane is full."""
        condition = (
            JobLaneItem.running.does_not_exist()
            | (JobLaneItem.running.contains(job_id))
            | (size(JobLaneItem.running) < limit)
        )
        try:
            _lane(self.tenant_id).update(actions=[JobLaneItem.running.add({job_id})], condition=condition)
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def leave_lane(self, job_ids: set[str]) -> None:
        """Idempotent: a job that left already (or never entered) changes nothing."""
        _lane(self.tenant_id).update(actions=[JobLaneItem.running.delete(job_ids)])

    def lane(self) -> set[str]:
        try:
            return set(JobLaneItem.get(f"TENANT#{self.tenant_id}", "#JOBLANE", consistent_read=True).running or ())
        except JobLaneItem.DoesNotExist:
            return set()
