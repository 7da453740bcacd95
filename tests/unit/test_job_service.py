"""Jobs (services/jobs.py) on in-memory ports: chunks counted once, hooks run once, the tenant's lane,
failure from the dead-letter queue, and retry."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.resources import JOBS_QUEUE
from chalicelib.services import jobs
from chalicelib.services.context import TenantContext
from tests.support.fakes import fake_context

KIND = "unit_test_job"
UPKEEP = "unit_test_upkeep"
DONE: list[str] = []
FAILED: list[str] = []


def _count_rows(ctx: TenantContext, job_id: str, payload: dict) -> dict:
    rows = payload["rows"]
    return {"counts": {"created": len(rows)}, "errors": [{"line": n, "message": "bad"} for n in payload.get("bad", [])]}


@pytest.fixture(autouse=True)
def unit_kind():
    jobs.register_kinds(
        {
            KIND: jobs.JobKind(
                _count_rows,
                on_success=lambda ctx, job: DONE.append(job.id),
                on_failure=lambda ctx, job: FAILED.append(job.id),
            )
        }
    )
    DONE.clear()
    FAILED.clear()
    yield
    del jobs._kinds[KIND]


def deliver_all(ctx: TenantContext, times: int = 1) -> None:
    messages = ctx.ports.queues.take(JOBS_QUEUE)
    for _ in range(times):
        for message in messages:
            jobs.run_chunk(ctx, message)


def test_chunks_count_once_and_the_success_hook_runs_once():
    ctx = fake_context()
    job = jobs.start_job(ctx, KIND, [{"rows": [1, 2]}, {"rows": [3]}], total=3)
    assert job["status"] == "running" and job["progress"]["chunks_total"] == 2
    deliver_all(ctx, times=3)  # redelivered: nothing counted twice
    done = jobs.job_view(ctx, job["id"])
    assert done["status"] == "succeeded" and done["counts"]["created"] == 3 and done["progress"]["percent"] == 100.0
    assert [job["id"]] == DONE
    assert ctx.ports.jobs.lane() == set()  # it left the lane


def test_row_problems_make_the_job_complete_with_errors_and_page():
    ctx = fake_context()
    job = jobs.start_job(ctx, KIND, [{"rows": [1], "bad": [7, 3]}], total=3, errors=[{"line": 1, "message": "early"}])
    deliver_all(ctx)
    view = jobs.job_view(ctx, job["id"])
    assert view["status"] == "completed_with_errors" and view["counts"]["failed"] == 3 and DONE == []
    first = jobs.job_errors(ctx, job["id"], 2, None)
    rest = jobs.job_errors(ctx, job["id"], 2, first["next_cursor"])
    assert [e["line"] for e in first["items"] + rest["items"]] == [1, 3, 7]


def test_a_job_with_no_chunks_finishes_at_once():
    ctx = fake_context()
    job = jobs.start_job(ctx, KIND, [], total=2, errors=[{"line": 1, "message": "x"}, {"line": 2, "message": "y"}])
    assert job["status"] == "completed_with_errors" and ctx.ports.queues.take(JOBS_QUEUE) == []


def test_a_tenant_runs_at_most_jobs_at_once_and_the_others_wait_on_the_queue():
    ctx = fake_context(settings={"jobs_at_once": 1})
    first = jobs.start_job(ctx, KIND, [{"rows": [1]}, {"rows": [2]}], total=2)
    second = jobs.start_job(ctx, KIND, [{"rows": [3]}], total=1)
    messages = ctx.ports.queues.take(JOBS_QUEUE)
    jobs.run_chunk(ctx, messages[0])  # the first job takes the one place
    jobs.run_chunk(ctx, messages[2])  # the second waits: its chunk goes back on the queue
    assert jobs.job_view(ctx, second["id"])["status"] == "running"
    assert ctx.ports.queues.take(JOBS_QUEUE) == [messages[2]]
    jobs.run_chunk(ctx, messages[1])  # the first finishes and leaves
    jobs.run_chunk(ctx, messages[2])
    assert {jobs.job_view(ctx, j["id"])["status"] for j in (first, second)} == {"succeeded"}


def test_upkeep_jobs_take_no_place_among_a_tenants_jobs_and_the_done_hook_runs_once_either_way(monkeypatch):
    ctx = fake_context(settings={"jobs_at_once": 1})
    done: list[str] = []
    upkeep_kind = jobs.JobKind(_count_rows, on_done=lambda ctx, job: done.append(job.id), takes_place=False)
    monkeypatch.setitem(jobs._kinds, UPKEEP, upkeep_kind)
    busy = jobs.start_job(ctx, KIND, [{"rows": [1]}, {"rows": [2]}], total=2)
    first, second = ctx.ports.queues.take(JOBS_QUEUE)
    jobs.run_chunk(ctx, first)  # holds the one place
    upkeep = jobs.start_job(ctx, UPKEEP, [{"rows": [3], "bad": [1]}], total=1)
    deliver_all(ctx, times=2)  # runs at once (no place needed); delivered twice, done once
    assert jobs.job_view(ctx, upkeep["id"])["status"] == "completed_with_errors" and done == [upkeep["id"]]
    assert jobs.job_view(ctx, busy["id"])["status"] == "running"
    jobs.run_chunk(ctx, second)
    assert jobs.job_view(ctx, busy["id"])["status"] == "succeeded"


def test_a_place_held_by_a_job_that_ended_is_given_back():
    ctx = fake_context(settings={"jobs_at_once": 1})
    ended = jobs.start_job(ctx, KIND, [{"rows": [1]}], total=1)
    deliver_all(ctx)
    assert ctx.ports.jobs.enter_lane(ended["id"], 1)  # as if its worker stopped before leaving
    later = jobs.start_job(ctx, KIND, [{"rows": [2]}], total=1)
    deliver_all(ctx)
    assert jobs.job_view(ctx, later["id"])["status"] == "succeeded"


def test_a_dead_chunk_fails_the_job_once_and_retry_queues_what_is_left():
    ctx = fake_context()
    job = jobs.start_job(ctx, KIND, [{"rows": [1]}, {"rows": [2]}], total=2)
    first, second = ctx.ports.queues.take(JOBS_QUEUE)
    jobs.run_chunk(ctx, first)
    for _ in range(2):  # the dead letter, delivered twice
        jobs.fail_chunk(ctx, second, "chunk 1 failed on every retry")
    failed = jobs.job_view(ctx, job["id"])
    assert failed["status"] == "failed" and failed["detail"]["failure"] == "chunk 1 failed on every retry"
    assert [job["id"], job["id"]] == FAILED  # the failure hook is idempotent and runs per delivery
    retried = jobs.retry_job(ctx, job["id"])
    assert retried["status"] == "running" and "failure" not in retried["detail"]
    with pytest.raises(Conflict):  # only a failed job is retried
        jobs.retry_job(ctx, job["id"])
    assert [m["chunk"] for m in ctx.ports.queues.take(JOBS_QUEUE)] == [1]
    jobs.run_chunk(ctx, second)
    assert jobs.job_view(ctx, job["id"])["status"] == "succeeded"


def test_jobs_belong_to_their_tenant():
    mine, theirs = fake_context("tenant_a"), fake_context("tenant_b")
    job = jobs.start_job(mine, KIND, [{"rows": [1]}], total=1)
    for look in (jobs.job_view, jobs.retry_job):
        with pytest.raises(NotFound):
            look(theirs, job["id"])
