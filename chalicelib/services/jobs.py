"""Jobs: long work split into chunks, one SQS message per chunk.

A job is readable at ``GET /jobs/{id}`` with its progress and the rows that failed.
Chunks finish at most once (storage/jobs.py), so redelivery never double-counts.
A chunk that keeps failing reaches the dead-letter queue, whose handler marks the
job ``failed`` with the reason; ``POST /jobs/{id}/retry`` queues the unfinished
chunks again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib import metrics
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.domain.ids import new_id
from chalicelib.domain.jobs import Job
from chalicelib.logs import logger
from chalicelib.resources import JOBS_QUEUE
from chalicelib.services.paging import page
from chalicelib.services.tenants import cached_settings
from chalicelib.storage import jobs as store
from chalicelib.storage import queues

RUNNING, SUCCEEDED, WITH_ERRORS, FAILED = "running", "succeeded", "completed_with_errors", "failed"
TERMINAL = (SUCCEEDED, WITH_ERRORS, FAILED)
INLINE_ERRORS = 100

ChunkWorker = Callable[[str, str, Any], dict[str, Any]]
"""(tenant_id, job_id, payload) → {"counts": {...}, "errors": [...]}; counts may give "processed" itself."""
JobHook = Callable[[str, Job], None]
"""(tenant_id, job): idempotent work once every chunk succeeded (e.g. delete the tag) or once the job failed."""
ROW_COUNTERS = ("created", "updated", "unchanged", "failed")
_workers: dict[str, ChunkWorker] = {}
_on_success: dict[str, JobHook] = {}
_on_failure: dict[str, JobHook] = {}
_counters: dict[str, tuple[str, ...]] = {}


def register_worker(
    kind: str,
    worker: ChunkWorker,
    on_success: JobHook | None = None,
    on_failure: JobHook | None = None,
    counters: tuple[str, ...] = ROW_COUNTERS,
) -> None:
    """``counters`` are the counts a job of this kind reports (storage/jobs.py COUNTERS)."""
    _workers[kind] = worker
    _counters[kind] = counters
    if on_success:
        _on_success[kind] = on_success
    if on_failure:
        _on_failure[kind] = on_failure


def start_job(
    tenant_id: str,
    kind: str,
    chunks: list[Any],
    *,
    total: int,
    errors: list[dict[str, Any]] = (),  # type: ignore[assignment]
    detail: dict[str, Any] | None = None,
    clock: Clock = system_clock,
    job_id: str | None = None,
) -> dict[str, Any]:
    """Store the job and queue its chunks. Pass ``job_id`` (from ``new_id("job")``) to record it elsewhere first."""
    job = Job(
        id=job_id or new_id("job"),
        kind=kind,
        status=RUNNING,
        total=total,
        chunks_total=len(chunks),
        counts={},
        detail=detail or {},
        created_at=to_rfc3339(clock()),
        finished_at=None,
    )
    store.create_job(tenant_id, job, chunks, list(errors))
    queues.send_messages(JOBS_QUEUE, (_message(tenant_id, job.id, kind, i) for i in range(len(chunks))))
    logger.info("job started", extra={"job_id": job.id, "kind": kind, "chunks": len(chunks), "total": total})
    _complete_if_done(tenant_id, job.id, clock)
    return job_view(tenant_id, job.id)


def _message(tenant_id: str, job_id: str, kind: str, chunk: int) -> dict[str, Any]:
    return {"kind": "job.chunk", "job_kind": kind, "tenant_id": tenant_id, "job_id": job_id, "chunk": chunk}


LANE_WAIT_SECONDS = 5
"""How long a chunk waits (on the queue, not in a worker) when its tenant already runs jobs_at_once jobs.
Tests drain queues at once and set it to 0."""


def _enter_lane(tenant_id: str, job_id: str) -> bool:
    """Take a place among the tenant's running jobs (settings.jobs_at_once). A place still held by a job that
    ended — its worker stopped between the two writes — is given back first, so the lane never stays full."""
    limit = int(cached_settings(tenant_id)["jobs_at_once"])
    if store.enter_lane(tenant_id, job_id, limit):
        return True
    ended = {
        other for other in store.lane(tenant_id)
        if (job := store.get_job(tenant_id, other)) is None or job.status != RUNNING
    }  # fmt: skip
    if not ended:
        return False
    store.leave_lane(tenant_id, ended)
    return store.enter_lane(tenant_id, job_id, limit)


def run_chunk(message: dict[str, Any], clock: Clock = system_clock) -> None:
    """Do one chunk of a job (called by the queue handler; safe to call twice). A tenant runs at most
    ``jobs_at_once`` jobs: the chunks of another go back on the queue to wait their turn, never dropped."""
    tenant_id, job_id, index = message["tenant_id"], message["job_id"], int(message["chunk"])
    loaded = store.load_chunk(tenant_id, job_id, index)
    if loaded is None:
        logger.warning("chunk of an unknown job ignored", extra={"job_id": job_id, "chunk": index})
        return
    state, payload = loaded
    if state != "done" and not _enter_lane(tenant_id, job_id):
        queues.send_messages(JOBS_QUEUE, [message], delay_seconds=LANE_WAIT_SECONDS)
        return
    if state == "done":
        _complete_if_done(tenant_id, job_id, clock)  # a redelivery may find completion unfinished
        return
    result = _workers[message["job_kind"]](tenant_id, job_id, payload)
    store.record_errors(tenant_id, job_id, result.get("errors", []))
    counts = dict(result.get("counts", {}))
    counts["failed"] = counts.get("failed", 0) + len(result.get("errors", []))
    counts.setdefault("processed", sum(counts.get(name, 0) for name in ROW_COUNTERS))
    if store.finish_chunk(tenant_id, job_id, index, counts):
        _complete_if_done(tenant_id, job_id, clock)


def _complete_if_done(tenant_id: str, job_id: str, clock: Clock) -> None:
    job = store.get_job(tenant_id, job_id)
    if job is None or job.status != RUNNING or job.counts["chunks_done"] < job.chunks_total:
        return
    final = SUCCEEDED if job.counts["failed"] == 0 else WITH_ERRORS
    if final == SUCCEEDED and job.kind in _on_success:
        _on_success[job.kind](tenant_id, job)  # before the status flips, so a crash here is retried
    if store.set_status(tenant_id, job_id, final, expected=RUNNING, finished_at=to_rfc3339(clock())):
        store.leave_lane(tenant_id, {job_id})
        logger.info("job finished", extra={"job_id": job_id, "status": final, "counts": job.counts})
        metrics.count(**{"JobsSucceeded" if final == SUCCEEDED else "JobsCompletedWithErrors": 1})


def fail_chunk(message: dict[str, Any], reason: str, clock: Clock = system_clock) -> None:
    """A chunk exhausted its retries (it reached the dead-letter queue)."""
    tenant_id, job_id = message["tenant_id"], message["job_id"]
    loaded = store.load_chunk(tenant_id, job_id, int(message["chunk"]))
    if loaded is None or loaded[0] == "done":
        return
    if store.set_status(tenant_id, job_id, FAILED, expected=RUNNING, finished_at=to_rfc3339(clock())):
        store.leave_lane(tenant_id, {job_id})
        logger.error("job failed", extra={"job_id": job_id, "chunk": message["chunk"]})
        metrics.count(JobsFailed=1)
    job = store.get_job(tenant_id, job_id)
    if job is None or job.status != FAILED:
        return
    if "failure" not in job.detail:
        store.set_detail(tenant_id, job_id, {**job.detail, "failure": reason, "failed_chunk": int(message["chunk"])})
        job = store.get_job(tenant_id, job_id)
    if job.kind in _on_failure:
        _on_failure[job.kind](tenant_id, job)  # idempotent: a redelivered dead letter runs it again


def retry_job(tenant_id: str, job_id: str) -> dict[str, Any]:
    job = store.get_job(tenant_id, job_id)
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.", {"field": "id"})
    if job.status != FAILED:
        raise Conflict(f"Only failed jobs can be retried; this one is {job.status}.")
    pending = store.pending_chunks(tenant_id, job_id)
    store.set_status(tenant_id, job_id, RUNNING, expected=FAILED)
    store.set_detail(tenant_id, job_id, {k: v for k, v in job.detail.items() if k not in ("failure", "failed_chunk")})
    queues.send_messages(JOBS_QUEUE, (_message(tenant_id, job_id, job.kind, i) for i in pending))
    return job_view(tenant_id, job_id)


def job_view(tenant_id: str, job_id: str) -> dict[str, Any]:
    job = store.get_job(tenant_id, job_id)
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.", {"field": "id"})
    errors, last = store.list_errors(tenant_id, job_id, INLINE_ERRORS, None)
    processed = job.counts["processed"]
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": {
            "total": job.total,
            "processed": processed,
            "percent": round(100 * processed / job.total, 1) if job.total else 100.0,
            "chunks_total": job.chunks_total,
            "chunks_done": job.counts["chunks_done"],
        },
        "counts": {name: job.counts[name] for name in _counters.get(job.kind, ROW_COUNTERS)},
        "errors": errors,
        "more_errors": last is not None,
        "detail": job.detail,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }


def job_errors(tenant_id: str, job_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    if store.get_job(tenant_id, job_id) is None:
        raise NotFound(f"Job {job_id} does not exist.", {"field": "id"})
    return page(
        f"job-errors:{tenant_id}:{job_id}", cursor, lambda start: store.list_errors(tenant_id, job_id, limit, start)
    )
