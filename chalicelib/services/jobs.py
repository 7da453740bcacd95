"""Jobs: long work split into chunks, one SQS message per chunk.

A job is readable at ``GET /jobs/{id}`` with its progress and the rows that failed.
Chunks finish at most once (storage/jobs.py), so redelivery never double-counts.
A chunk that keeps failing reaches the dead-letter queue, whose handler marks the
job ``failed`` with the reason; ``POST /jobs/{id}/retry`` queues the unfinished
chunks again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from chalicelib import metrics
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.errors import Conflict, NotFound, ValidationFailed
from chalicelib.domain.ids import new_id
from chalicelib.domain.jobs import Job
from chalicelib.logs import logger
from chalicelib.ports.messages import JobChunk
from chalicelib.resources import JOBS_QUEUE
from chalicelib.services.context import TenantContext
from chalicelib.services.paging import page

RUNNING, SUCCEEDED, WITH_ERRORS, FAILED = "running", "succeeded", "completed_with_errors", "failed"
TERMINAL = (SUCCEEDED, WITH_ERRORS, FAILED)
INLINE_ERRORS = 100

ChunkWorker = Callable[[TenantContext, str, Any], dict[str, Any]]
"""(tenant, job_id, payload) → {"counts": {...}, "errors": [...]}; counts may give "processed" itself."""
JobHook = Callable[[TenantContext, Job], None]
"""(tenant, job): idempotent work once every chunk succeeded (e.g. delete the tag) or once the job failed."""
ROW_COUNTERS = ("created", "updated", "unchanged", "failed")


class NotYet(Exception):
    """Raised by a chunk's worker that should run later: the chunk goes back on the queue for ``seconds``,
    not done, and is not counted as a failure."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"not yet: again in {seconds} s")
        self.seconds = seconds


@dataclass(frozen=True)
class JobKind:
    """What a kind of job does: each chunk, then once when it succeeded or failed; ``on_done`` once every chunk
    is done, with errors or not, after the job says so (at most once: a stop right then skips it, so it may
    only do what something else would otherwise do later). ``counters`` are the counts its jobs report
    (storage/jobs.py COUNTERS). ``takes_place``: its jobs count among the tenant's ``jobs_at_once`` (the
    service's own upkeep, which a tenant did not ask for, does not)."""

    worker: ChunkWorker
    on_success: JobHook | None = None
    on_failure: JobHook | None = None
    on_done: JobHook | None = None
    takes_place: bool = True
    counters: tuple[str, ...] = ROW_COUNTERS


_kinds: dict[str, JobKind] = {}


def _counters_of(kind: str) -> tuple[str, ...]:
    return _kinds[kind].counters if kind in _kinds else ROW_COUNTERS


def register_kinds(kinds: dict[str, JobKind]) -> None:
    """Called once, by chalicelib/composition.py, with every service's JOB_KINDS."""
    _kinds.update(kinds)


def start_job(
    ctx: TenantContext,
    kind: str,
    chunks: list[Any],
    *,
    total: int,
    errors: Sequence[dict[str, Any]] = (),
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
    ctx.ports.jobs.create_job(job, chunks, list(errors))
    ctx.ports.queues.send(JOBS_QUEUE, (_message(ctx, job.id, kind, i) for i in range(len(chunks))))
    logger.info("job started", extra={"job_id": job.id, "kind": kind, "chunks": len(chunks), "total": total})
    _complete_if_done(ctx, job.id, clock)
    return job_view(ctx, job.id)


def _message(ctx: TenantContext, job_id: str, kind: str, chunk: int) -> JobChunk:
    return JobChunk(kind="job.chunk", job_kind=kind, tenant_id=ctx.tenant_id, job_id=job_id, chunk=chunk)


LANE_WAIT_SECONDS = 5
"""How long a chunk waits (on the queue, not in a worker) when its tenant already runs jobs_at_once jobs.
Tests drain queues at once and set it to 0."""


def _enter_lane(ctx: TenantContext, job_id: str) -> bool:
    """Take a place among the tenant's running jobs (settings.jobs_at_once). A place still held by a job that
    ended — its worker stopped between the two writes — is given back first, so the lane never stays full."""
    limit = int(ctx.settings["jobs_at_once"])
    if ctx.ports.jobs.enter_lane(job_id, limit):
        return True
    ended = {
        other for other in ctx.ports.jobs.lane()
        if (job := ctx.ports.jobs.get_job(other)) is None or job.status != RUNNING
    }  # fmt: skip
    if not ended:
        return False
    ctx.ports.jobs.leave_lane(ended)
    return ctx.ports.jobs.enter_lane(job_id, limit)


def run_chunk(ctx: TenantContext, message: dict[str, Any], clock: Clock = system_clock) -> None:
    """Do one chunk of a job (called by the queue handler; safe to call twice). A tenant runs at most
    ``jobs_at_once`` jobs: the chunks of another go back on the queue to wait their turn, never dropped."""
    job_id, index = message["job_id"], int(message["chunk"])
    loaded = ctx.ports.jobs.load_chunk(job_id, index)
    if loaded is None:
        logger.warning("chunk of an unknown job ignored", extra={"job_id": job_id, "chunk": index})
        return
    state, payload = loaded
    kind = _kinds[message["job_kind"]]
    if state != "done" and kind.takes_place and not _enter_lane(ctx, job_id):
        ctx.ports.queues.send(JOBS_QUEUE, [message], delay_seconds=LANE_WAIT_SECONDS)
        return
    if state == "done":
        _complete_if_done(ctx, job_id, clock)  # a redelivery may find completion unfinished
        return
    try:
        result = kind.worker(ctx, job_id, payload)
    except NotYet as wait:
        ctx.ports.queues.send(JOBS_QUEUE, [message], delay_seconds=wait.seconds)
        return
    ctx.ports.jobs.record_errors(job_id, result.get("errors", []))
    counts = dict(result.get("counts", {}))
    counts["failed"] = counts.get("failed", 0) + len(result.get("errors", []))
    counts.setdefault("processed", sum(counts.get(name, 0) for name in ROW_COUNTERS))
    if ctx.ports.jobs.finish_chunk(job_id, index, counts):
        _complete_if_done(ctx, job_id, clock)


def _complete_if_done(ctx: TenantContext, job_id: str, clock: Clock) -> None:
    job = ctx.ports.jobs.get_job(job_id)
    if job is None or job.status != RUNNING or job.counts["chunks_done"] < job.chunks_total:
        return
    final = SUCCEEDED if job.counts["failed"] == 0 else WITH_ERRORS
    hook = _kinds[job.kind].on_success if job.kind in _kinds else None
    if final == SUCCEEDED and hook:
        hook(ctx, job)  # before the status flips, so a crash here is retried
    if ctx.ports.jobs.set_status(job_id, final, expected=RUNNING, finished_at=to_rfc3339(clock())):
        ctx.ports.jobs.leave_lane({job_id})
        logger.info("job finished", extra={"job_id": job_id, "status": final, "counts": job.counts})
        if final == SUCCEEDED:
            metrics.count(JobsSucceeded=1)
        else:
            metrics.count(JobsCompletedWithErrors=1)
        done = _kinds[job.kind].on_done if job.kind in _kinds else None
        if done:
            done(ctx, job)


def fail_chunk(ctx: TenantContext, message: dict[str, Any], reason: str, clock: Clock = system_clock) -> None:
    """A chunk exhausted its retries (it reached the dead-letter queue)."""
    job_id = message["job_id"]
    loaded = ctx.ports.jobs.load_chunk(job_id, int(message["chunk"]))
    if loaded is None or loaded[0] == "done":
        return
    if ctx.ports.jobs.set_status(job_id, FAILED, expected=RUNNING, finished_at=to_rfc3339(clock())):
        ctx.ports.jobs.leave_lane({job_id})
        logger.error("job failed", extra={"job_id": job_id, "chunk": message["chunk"]})
        metrics.count(JobsFailed=1)
    job = ctx.ports.jobs.get_job(job_id)
    if job is None or job.status != FAILED:
        return
    if "failure" not in job.detail:
        job = replace(job, detail={**job.detail, "failure": reason, "failed_chunk": int(message["chunk"])})
        ctx.ports.jobs.set_detail(job_id, job.detail)
    hook = _kinds[job.kind].on_failure if job.kind in _kinds else None
    if hook:
        hook(ctx, job)  # idempotent: a redelivered dead letter runs it again


def retry_job(ctx: TenantContext, job_id: str) -> dict[str, Any]:
    job = ctx.ports.jobs.get_job(job_id)
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.", {"field": "id"})
    if job.status != FAILED:
        raise Conflict(f"Only failed jobs can be retried; this one is {job.status}.")
    pending = ctx.ports.jobs.pending_chunks(job_id)
    ctx.ports.jobs.set_status(job_id, RUNNING, expected=FAILED)
    ctx.ports.jobs.set_detail(job_id, {k: v for k, v in job.detail.items() if k not in ("failure", "failed_chunk")})
    ctx.ports.queues.send(JOBS_QUEUE, (_message(ctx, job_id, job.kind, i) for i in pending))
    return job_view(ctx, job_id)


def job_view(ctx: TenantContext, job_id: str) -> dict[str, Any]:
    job = ctx.ports.jobs.get_job(job_id)
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.", {"field": "id"})
    errors, last = ctx.ports.jobs.list_errors(job_id, INLINE_ERRORS, None)
    return {**_view(job), "errors": errors, "more_errors": last is not None}


STATUSES = (RUNNING, SUCCEEDED, WITH_ERRORS, FAILED)


def list_jobs(ctx: TenantContext, query: dict[str, str], limit: int, cursor: str | None) -> dict[str, Any]:
    """The tenant's jobs, newest first, optionally of one ``kind`` and/or ``status`` (row problems are on
    ``GET /jobs/{id}``)."""
    kind, status = query.get("kind") or None, query.get("status") or None
    if kind is not None and kind not in _kinds:
        raise ValidationFailed("kind", f"kind is one of {', '.join(sorted(_kinds))}.", allowed=sorted(_kinds))
    if status is not None and status not in STATUSES:
        raise ValidationFailed("status", f"status is one of {', '.join(STATUSES)}.", allowed=list(STATUSES))
    return page(
        f"jobs:{ctx.tenant_id}:{kind}:{status}",
        cursor,
        lambda start: ctx.ports.jobs.list_jobs(limit, start, kind, status),
        _view,
    )


def _view(job: Job) -> dict[str, Any]:
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
        "counts": {
            name: job.counts[name] for name in (_kinds[job.kind].counters if job.kind in _kinds else ROW_COUNTERS)
        },
        "detail": job.detail,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }


def job_errors(ctx: TenantContext, job_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    if ctx.ports.jobs.get_job(job_id) is None:
        raise NotFound(f"Job {job_id} does not exist.", {"field": "id"})
    return page(
        f"job-errors:{ctx.tenant_id}:{job_id}", cursor, lambda start: ctx.ports.jobs.list_errors(job_id, limit, start)
    )
