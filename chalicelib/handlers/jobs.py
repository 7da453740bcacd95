"""Queue handlers for job chunks (imports, bulk tagging, tag and group clean-up, segment evaluation)."""

from __future__ import annotations

from chalice import Blueprint
from chalice.app import SQSEvent

from chalicelib.composition import tenant_context
from chalicelib.handlers.batch import process_records
from chalicelib.logs import logger
from chalicelib.resources import JOBS_DEAD_LETTER_QUEUE, JOBS_QUEUE
from chalicelib.services import jobs

blueprint = Blueprint(__name__)


@blueprint.on_sqs_message(queue=JOBS_QUEUE, batch_size=5)
def process_job_chunks(event: SQSEvent) -> dict:
    def handle(message: dict, record) -> None:
        logger.thread_safe_append_keys(tenant_id=message["tenant_id"], job_id=message["job_id"])
        jobs.run_chunk(tenant_context(message["tenant_id"]), message)

    return process_records(event, JOBS_QUEUE, handle)


@blueprint.on_sqs_message(queue=JOBS_DEAD_LETTER_QUEUE, batch_size=10)
def fail_dead_job_chunks(event: SQSEvent) -> dict:
    """A chunk that failed every retry marks its job failed (retry with POST /jobs/{id}/retry)."""

    def handle(message: dict, record) -> None:
        logger.thread_safe_append_keys(tenant_id=message["tenant_id"], job_id=message["job_id"])
        jobs.fail_chunk(
            tenant_context(message["tenant_id"]),
            message,
            f"chunk {message['chunk']} failed on every retry and was set aside",
        )

    return process_records(event, JOBS_DEAD_LETTER_QUEUE, handle)
