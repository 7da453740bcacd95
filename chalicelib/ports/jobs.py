"""The jobs of one tenant: records with progress, their chunks of work, row problems, and the lane
that bounds how many run at once."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.domain.jobs import Job

Position = dict[str, Any] | None


class JobRepository(Protocol):
    def create_job(self, job: Job, chunks: list[Any], errors: list[dict[str, Any]]) -> None:
        """The job, its pending chunks, and the problems found before any work ran."""

    def record_errors(self, job_id: str, errors: list[dict[str, Any]]) -> None: ...

    def get_job(self, job_id: str) -> Job | None: ...

    def list_jobs(
        self, limit: int, start: Position, kind: str | None = None, status: str | None = None
    ) -> tuple[list[Job], Position]:
        """Newest first, optionally of one kind and/or status."""

    def load_chunk(self, job_id: str, index: int) -> tuple[str, Any] | None:
        """(state, payload) of a chunk; None for an unknown one."""

    def finish_chunk(self, job_id: str, index: int, counts: dict[str, int]) -> bool:
        """Mark the chunk done and add its counts to the job, once; False if it was done already."""

    def set_status(self, job_id: str, status: str, *, expected: str, finished_at: str | None = None) -> bool:
        """Move the job from ``expected`` to ``status``; False when it was not in ``expected``."""

    def list_errors(self, job_id: str, limit: int, start: Position) -> tuple[list[dict[str, Any]], Position]: ...

    def set_detail(self, job_id: str, detail: dict[str, Any]) -> None: ...

    def pending_chunks(self, job_id: str) -> list[int]: ...

    def enter_lane(self, job_id: str, limit: int) -> bool:
        """Count the job among the running ones if fewer than ``limit`` run (or it already does)."""

    def leave_lane(self, job_ids: set[str]) -> None:
        """Idempotent."""

    def lane(self) -> set[str]: ...
