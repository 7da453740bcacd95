"""Long-running jobs: progress, row problems, retry."""

from __future__ import annotations

from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call
from chalicelib.http.schemas import JOB_SCHEMA, JOB_SUMMARY_SCHEMA, page_of
from chalicelib.services import jobs

blueprint = ApiBlueprint(__name__)


@blueprint.operation(
    "GET",
    "/jobs",
    summary="The tenant's jobs, newest first (imports, evaluations, bulk tagging…), by kind and status",
    access=Access.VIEWER,
    query={
        "kind": {"schema": {"type": "string"}, "description": "Only jobs of this kind, e.g. import."},
        "status": {"schema": {"enum": list(jobs.STATUSES)}, "description": "Only jobs in this status."},
        **PAGE_QUERY,
    },
    response_schema=page_of(JOB_SUMMARY_SCHEMA),
)
def list_jobs(call: Call) -> dict:
    return jobs.list_jobs(call.context, call.query, *call.page())


@blueprint.operation(
    "GET",
    "/jobs/{job_id}",
    summary="A job's status, progress, counts and first row problems",
    access=Access.VIEWER,
    response_schema=JOB_SCHEMA,
)
def get_job(call: Call, job_id: str) -> dict:
    return jobs.job_view(call.context, job_id)


@blueprint.operation(
    "GET",
    "/jobs/{job_id}/errors",
    summary="Every row problem of a job, by line",
    access=Access.VIEWER,
    query=PAGE_QUERY,
    response_schema=page_of({"type": "object"}),
)
def job_errors(call: Call, job_id: str) -> dict:
    return jobs.job_errors(call.context, job_id, *call.page())


@blueprint.operation(
    "POST",
    "/jobs/{job_id}/retry",
    summary="Queue a failed job's unfinished chunks again",
    access=Access.ADMIN,
    response_schema=JOB_SCHEMA,
)
def retry_job(call: Call, job_id: str) -> dict:
    return jobs.retry_job(call.context, job_id)
