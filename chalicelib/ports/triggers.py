"""One tenant's triggers: their definitions, runs (with the batches a run acts on), the firings done, the
emails they claimed, and the announcements they gave contacts (storage/triggers.py explains the records)."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.domain.triggers import Run, Trigger

Position = dict[str, Any] | None


class TriggerRepository(Protocol):
    def create(self, trigger: Trigger) -> None: ...

    def save(self, before: Trigger, after: Trigger) -> None:
        """Replace it whole unless it changed since ``before`` was read (StaleTrigger)."""

    def get(self, trigger_id: str) -> Trigger | None: ...

    def page(self, limit: int, start: Position) -> tuple[list[Trigger], Position]: ...

    def all_triggers(self) -> list[Trigger]: ...

    def delete(self, trigger: Trigger) -> None:
        """Unless it changed since it was read (StaleTrigger)."""

    def advance_schedule(self, trigger: Trigger, next_run_at: str) -> bool:
        """Move the next run on from the one ``trigger`` had; False if another worker did."""

    def start_run(self, trigger_id: str, run: Run, batches: list[list[str]]) -> bool:
        """The run and the batches of contacts it acts on; False if the run existed already."""

    def get_run(self, trigger_id: str, run_id: str) -> Run | None: ...

    def runs_page(self, trigger_id: str, limit: int, start: Position) -> tuple[list[Run], Position]:
        """Runs, newest first."""

    def batch_contacts(self, trigger_id: str, run_id: str, number: int) -> tuple[list[str], bool]:
        """A batch's contact ids, and whether it is done."""

    def finish_batch(self, trigger_id: str, run_id: str, number: int, counts: dict[str, int], at: str) -> bool:
        """Mark the batch done and add its counts to the run, once; False if it was done before."""

    def finish_run_if_complete(self, trigger_id: str, run_id: str, at: str) -> bool:
        """Stamp the run finished once every batch is done; False otherwise (or if stamped already)."""

    def has_fired(self, contact_id: str, key: str) -> bool: ...

    def record_firing(
        self, trigger_id: str, contact_id: str, key: str, run: Run, counts: dict[str, int], at: str
    ) -> bool:
        """Write the firing and add ``counts`` to ``run`` (made if new), once; False if it was recorded."""

    def claim_mail(self, contact_id: str, key: str) -> bool:
        """Claim a firing's email before SES; False if it was claimed before."""

    def settle_mail(
        self, contact_id: str, key: str, state: str, message_id: str | None, reason: str | None
    ) -> None: ...

    def release_mail(self, contact_id: str, key: str) -> None:
        """A claimed email SES did not take: a redelivery may claim it again."""

    def give_announcement(self, contact_id: str, announcement_id: str, at: str) -> None: ...

    def personal_announcements(self, contact_id: str, ordinal: int) -> set[str]: ...
