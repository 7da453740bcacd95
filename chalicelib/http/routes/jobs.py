"""Long-running jobs: progress, row problems, retry."""

from __future__ import annotations

from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call
from chalicelib.http.schemas import JOB_SCHEMA, page_of
from chalicelib.services import jobs

blueprint = ApiBlueprint(__name__)


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
