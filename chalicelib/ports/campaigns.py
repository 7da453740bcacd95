"""A tenant's campaigns (content, status, counters) and what sending one writes: the audience snapshot in
batches, each recipient's send record, the contacts' frequency ledgers and the tenant's send rate."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from chalicelib.domain.campaigns import Batch, Campaign, Claim, Ledger, Outcome, RecipientFacts, RecipientRecord
from chalicelib.domain.mail_events import RecipientEvent

Position = dict[str, Any] | None


class CampaignRepository(Protocol):
    def create(self, campaign: Campaign) -> None: ...

    def save_content(self, before: Campaign, after: Campaign) -> None:
        """Save an edit (content, targets, schedule, status) if the campaign's version and status are still
        ``before``'s; raises StaleCampaign otherwise."""

    def get(self, campaign_id: str) -> Campaign | None:
        """Strongly consistent."""

    def page(self, limit: int, start: Position) -> tuple[list[Campaign], Position]: ...

    def all_campaigns(self) -> list[Campaign]: ...

    def delete(self, campaign: Campaign) -> None:
        """Delete if its status is still ``campaign``'s; raises StaleCampaign otherwise."""

    def change_status(
        self, campaign_id: str, allowed: Iterable[str], status: str, reason: str | None = None, **fields: Any
    ) -> bool:
        """Move to ``status`` (with ``reason``, and setting ``fields``) if the campaign is in one of ``allowed``;
        False if it was not."""

    def record_winner(self, campaign_id: str, variant: str, at: str) -> bool:
        """Record the A/B test's winner unless one was recorded: True for the one call that recorded it."""

    def finish_if_complete(
        self, campaign_id: str, shards: int, status: str, finished_at: str, needs_winner: bool = False
    ) -> bool:
        """sending → ``status`` once all ``shards`` audiences are built, every batch is done and, with
        ``needs_winner`` (an A/B test), its winner is recorded; False if not."""


class SendLedger(Protocol):
    """The sending side of the tenant's campaigns: each write that counts also moves the campaign's counters."""

    def acquire_build(self, campaign_id: str, shard: int, build_id: str, now_ms: int, lease_ms: int) -> str:
        """``acquired`` (build it), ``built`` (it exists: queue what is left) or ``busy`` (another delivery
        holds an unexpired lease)."""

    def write_batches(
        self,
        campaign_id: str,
        shard: int,
        build_id: str,
        batches: list[list[tuple[str, str]]],
        held_from: int | None = None,
    ) -> None:
        """Write this build's batches of a shard, replacing whatever an earlier, crashed build left; those from
        ``held_from`` on are held (an A/B test's rest)."""

    def finish_build(self, campaign_id: str, shard: int, build_id: str, batches: int, audience: int) -> bool:
        """Mark the shard built and add its batches and audience to the campaign, once; False if another
        build won."""

    def batches_of(self, campaign_id: str, shard: int | None = None) -> list[Batch]: ...

    def claim(
        self,
        campaign_id: str,
        claim_id: str,
        claims: list[Claim],
        ledgers: list[Ledger],
        at: str,
        require_sending: bool = True,
        continuing: bool = False,
    ) -> list[Claim]:
        """Write the records of ``claims`` if each recipient is unclaimed (or released) and the campaign is
        sending (``continuing``: or already sent), moving the ledgers of those claimed for mailing; return the
        claims that landed (recipients another claim holds are dropped). Raises NotSending if the campaign is
        not sending, LedgerMoved if a ledger changed since it was read."""

    def settle(self, campaign_id: str, claim_id: str, outcomes: list[Outcome], at: str, batch_key: str | None) -> None:
        """Record what SES said for each recipient ``claim_id`` holds, count it, and (``batch_key``) mark the
        batch done; a batch already done is not counted twice."""

    def send_records(
        self, campaign_id: str, state: str | None, limit: int, start: Position
    ) -> tuple[list[RecipientRecord], Position]: ...

    def all_send_records(self, campaign_id: str) -> list[RecipientRecord]: ...

    def mark_feedback(self, campaign_id: str, contact_id: str, state: str) -> bool:
        """sent → ``state`` (bounced, complained) and count it, once; False if the record was not sent."""

    def variant_stats(self, campaign_id: str) -> dict[str, dict[str, int]]:
        """An A/B test's counters by variant (domain/ab_tests.py VARIANT_COUNTERS); settle and
        record_engagements move them with the campaign's."""

    def record_engagements(self, campaign_id: str, engagements: list[RecipientEvent]) -> int:
        """SES deliveries, opens and clicks of the campaign's recipients, together: the opens and clicks totals
        once per event ``key``; each recipient's ``{kind}_at`` (the earliest time seen) and the campaign's unique
        count once per recipient. How many events were counted now (not before, nor twice in the list)."""

    def recipient_facts(self, recipients: list[tuple[str, str]]) -> RecipientFacts:
        """The contacts, suppressions and frequency ledgers of (contact id, email) recipients."""

    def reserve_send_slots(self, count: int, per_second: int, now_ms: int, max_ahead_ms: int) -> int | None:
        """Reserve ``count`` slots at ``per_second`` on the tenant's one send lane; return when the first starts
        (epoch ms), or None, reserving nothing, when that is more than ``max_ahead_ms`` away."""
