"""Sending a campaign: the audience snapshot, the send workers, and their guarantees.

1. **Start** (send now, or the minute schedule at ``send_at``): the campaign goes
   ``sending`` and one ``audience`` message per contact shard is queued.
2. **Audience** (one shard): union of the target segments' members minus the
   exclusions', their addresses (unique, case-insensitive), cut into batches of
   49 written as the snapshot, under a lease so one build wins; then queued.
3. **Batch** (≤49 recipients): read the contacts, suppressions and frequency
   ledgers in one BatchGetItem; claim every recipient's send record in one
   transaction conditioned on the record being free and the campaign sending
   (so pause and cancel stop claims at once); reserve send slots on the tenant's
   rate cursor; call SES once per recipient; settle the records, the counters
   and the batch in one transaction.

At-least-once in, at-most-once out: a redelivered batch skips every recipient
already claimed; a claim whose SES answer never came back stays ``claimed`` and
is reported as ``unknown``, never re-sent. Throttling releases the unsent claims
and re-queues the batch with a delay (no sleeping on errors); a spent daily
quota or a paused/suspended account pauses the campaign with the reason, and
``resume`` re-queues the batches not done.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chalicelib.domain import ab_tests as ab_rules
from chalicelib.domain import campaigns as rules
from chalicelib.domain.campaigns import Batch, Campaign, Claim, LedgerMoved, NotSending, Outcome, RecipientFacts
from chalicelib.domain.clock import Clock, stored_moment, system_clock, to_rfc3339
from chalicelib.domain.contacts import SHARDS, contact_id_for
from chalicelib.domain.durations import parse_duration
from chalicelib.domain.templates import Templates
from chalicelib.logs import logger
from chalicelib.ports.messages import BuildAudience, DecideWinner, SendBatch
from chalicelib.ports.queues import SendFailed
from chalicelib.resources import SEND_QUEUE
from chalicelib.services import mail, webhooks
from chalicelib.services.contacts import contact_view
from chalicelib.services.context import TenantContext

BUILD_LEASE_MS = 5 * 60 * 1000
MAX_AHEAD_MS = 2_000
"""A batch whose first send slot is further ahead than this goes back on the queue with a delay instead
of waiting inside the worker."""
REQUEUE_DELAY_CAP = 900
"""SQS's longest delay; tests lower it to 0 so a re-queued batch is visible at once."""
RATE_WAIT_SECONDS = 2
LEDGER_RETRY_SECONDS = 1


class AudienceBusy(Exception):
    """Another delivery of this shard's audience message is building it; SQS retries this one later."""


# --- start and resume ----------------------------------------------------------------------------------


def start(ctx: TenantContext, campaign_id: str, allowed: set[str], clock: Clock = system_clock) -> bool:
    """Move to ``sending`` and queue the audience of every shard; False if the campaign was not in ``allowed``."""
    started: dict[str, Any] = {
        "started_at": to_rfc3339(clock()),
        "shards_done": 0,
        "batches_total": 0,
        "batches_done": 0,
        "audience": 0,
    }
    tenant_id, campaigns = ctx.tenant_id, ctx.ports.campaigns
    if not campaigns.change_status(campaign_id, allowed, rules.SENDING, **started):
        return False
    messages: list[BuildAudience | DecideWinner] = [
        BuildAudience(kind="audience", tenant_id=tenant_id, campaign_id=campaign_id, shard=s) for s in range(SHARDS)
    ]
    try:
        ctx.ports.queues.send(SEND_QUEUE, messages)
        campaign = campaigns.get(campaign_id)
        if campaign is not None and campaign.ab_test:
            wait = parse_duration(campaign.ab_test["wait"], "ab_test.wait")
            _requeue(ctx, _decide_message(ctx.tenant_id, campaign_id), delay=int(wait.total_seconds()))
    except SendFailed:
        campaigns.change_status(
            campaign_id, {rules.SENDING}, rules.FAILED, "the audience could not be queued; send again"
        )
        raise
    logger.info("campaign started", extra={"tenant_id": tenant_id, "campaign_id": campaign_id})
    return True


def _batch_message(tenant_id: str, campaign_id: str, batch: Batch, attempt: int = 0) -> SendBatch:
    return SendBatch(
        kind="batch",
        tenant_id=tenant_id,
        campaign_id=campaign_id,
        batch=batch.key,
        recipients=[list(recipient) for recipient in batch.recipients],
        attempt=attempt,
    )


def resume(ctx: TenantContext, campaign_id: str) -> bool:
    """paused → sending, then queue every batch not done (each recipient's record says whether it was mailed)."""
    if not ctx.ports.campaigns.change_status(campaign_id, {rules.PAUSED}, rules.SENDING):
        return False
    _queue_undone(ctx, campaign_id)
    return True


# --- the audience of one shard -------------------------------------------------------------------------


def _shard_audience(ctx: TenantContext, campaign: Campaign, shard: int) -> list[tuple[str, str]]:
    def members(segment_id: str) -> list[int]:
        segment = ctx.ports.segments.get(segment_id)
        if segment is None or segment.generation is None:
            raise RuntimeError(f"segment {segment_id} has no published membership")
        return sorted(ctx.ports.segments.shard_members(segment_id, segment.generation, shard))

    ordinals = rules.audience_ordinals(
        [np.asarray(members(s), dtype=np.int64) for s in campaign.segments],
        [np.asarray(members(s), dtype=np.int64) for s in campaign.exclude_segments],
    )
    ids = [contact_id_for(int(o)) for o in ordinals]
    found: dict[str, Any] = {}
    for start_at in range(0, len(ids), 100):
        found.update(ctx.ports.contacts.get_contacts(ids[start_at : start_at + 100]))
    return rules.unique_addresses((i, found[i].email) for i in ids if i in found and found[i].email)


def build_audience(ctx: TenantContext, campaign_id: str, shard: int, clock: Clock = system_clock) -> None:
    """Build one shard's snapshot under a lease (each attempt its own build id: two concurrent deliveries of
    the message never write together; a crashed attempt's lease has run out before SQS redelivers it)."""
    campaigns, sends = ctx.ports.campaigns, ctx.ports.sends
    build_id = uuid.uuid4().hex
    campaign = campaigns.get(campaign_id)
    if campaign is None or campaign.status in rules.FINISHED:
        return
    now_ms = int(clock().timestamp() * 1000)
    state = sends.acquire_build(campaign_id, shard, build_id, now_ms, BUILD_LEASE_MS)
    if state == "busy":
        raise AudienceBusy(f"shard {shard} of {campaign_id} is being built by another delivery")
    if state == "acquired":
        try:
            recipients = _shard_audience(ctx, campaign, shard)
        except RuntimeError as problem:
            campaigns.change_status(campaign_id, {rules.SENDING, rules.PAUSED}, rules.FAILED, str(problem))
            return
        batches, held_from = _batches_of(campaign, recipients)
        sends.write_batches(campaign_id, shard, build_id, batches, held_from)
        if not sends.finish_build(campaign_id, shard, build_id, len(batches), len(recipients)):
            return  # our lease ran out and another delivery finished the shard; it queues the batches
    current = campaigns.get(campaign_id)
    if current is not None and current.status == rules.SENDING:  # paused: resume queues them
        _queue_undone(ctx, campaign_id, shard)
    _finish_if_complete(ctx, campaign, clock)


def _batches_of(
    campaign: Campaign, recipients: list[tuple[str, str]]
) -> tuple[list[list[tuple[str, str]]], int | None]:
    """A shard's batches, and where the held ones start: an A/B test's test recipients first, then its rest."""
    if not campaign.variants or not campaign.ab_test:
        return rules.batches(recipients), None
    names, share = [v["name"] for v in campaign.variants], int(campaign.ab_test["test_percent"])
    tested = [r for r in recipients if ab_rules.assign(campaign.id, r[0], names, share).in_test]
    chosen = set(tested)
    test_batches = rules.batches(tested)
    return test_batches + rules.batches([r for r in recipients if r not in chosen]), len(test_batches)


def _queue_undone(ctx: TenantContext, campaign_id: str, shard: int | None = None) -> None:
    """Queue the batches (of one shard, or of all) not done yet: an A/B test's held ones only once it has its
    winner, which they carry."""
    campaign = ctx.ports.campaigns.get(campaign_id)
    winner = campaign.winner if campaign is not None else None
    messages = []
    for batch in ctx.ports.sends.batches_of(campaign_id, shard):
        if batch.done or (batch.held and winner is None):
            continue
        message = _batch_message(ctx.tenant_id, campaign_id, batch)
        if batch.held and winner is not None:
            message["variant"] = winner
        messages.append(message)
    ctx.ports.queues.send(SEND_QUEUE, messages)


def _finish_if_complete(ctx: TenantContext, campaign: Campaign, clock: Clock) -> None:
    """``sent`` once every audience is built and every batch done — and, for an A/B test, once its winner is
    chosen: when the test share takes the whole audience, nobody is held, yet the test still has to end."""
    at, campaign_id = to_rfc3339(clock()), campaign.id
    if ctx.ports.campaigns.finish_if_complete(campaign_id, SHARDS, rules.SENT, at, needs_winner=campaign.is_ab_test):
        logger.info("campaign sent", extra={"tenant_id": ctx.tenant_id, "campaign_id": campaign_id})
        finished = ctx.ports.campaigns.get(campaign_id)
        webhooks.campaign_sent(ctx, campaign_id, finished.name if finished else "", at)


# --- one batch ------------------------------------------------------------------------------------------

_frozen: dict[tuple[str, str], Campaign] = {}


def _campaign_content(ctx: TenantContext, campaign_id: str) -> Campaign | None:
    """A sending campaign's content never changes, so a worker reads it once."""
    key = (ctx.tenant_id, campaign_id)
    if key not in _frozen:
        campaign = ctx.ports.campaigns.get(campaign_id)
        if campaign is None or campaign.status in rules.EDITABLE:
            return campaign
        if len(_frozen) > 256:
            _frozen.clear()
        _frozen[key] = campaign
    return _frozen[key]


@dataclass(frozen=True)
class BatchResult:
    sent: int = 0
    requeued: bool = False
    paused: str | None = None


def send_batch(
    ctx: TenantContext,
    message: dict[str, Any],
    message_id: str,
    clock: Clock = system_clock,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchResult:
    tenant_id, campaign_id, sends = ctx.tenant_id, message["campaign_id"], ctx.ports.sends
    campaign = _campaign_content(ctx, campaign_id)
    if campaign is None or campaign.status in rules.EDITABLE:
        return BatchResult()
    settings = ctx.settings
    cap = rules.FrequencyCap.from_settings(settings)
    recipients = [(contact_id, email) for contact_id, email in message["recipients"]]
    facts = sends.recipient_facts(recipients)
    now = clock()
    claims, ledgers = rules.claims_for(recipients, facts, cap, int(now.timestamp()))
    rate = int(settings["send_rate_per_second"])
    to_mail = sum(1 for c in claims if c.state == rules.CLAIMED)
    first_slot = 0
    if to_mail:
        reserved = sends.reserve_send_slots(to_mail, rate, int(now.timestamp() * 1000), MAX_AHEAD_MS)
        if reserved is None:
            _requeue(ctx, message, delay=RATE_WAIT_SECONDS)
            return BatchResult(requeued=True)
        first_slot = reserved
    try:
        continuing = int(message.get("attempt", 0)) > 0  # a throttled delivery's released recipients
        landed = sends.claim(campaign_id, message_id, claims, ledgers, to_rfc3339(now), continuing=continuing)
    except NotSending:
        return BatchResult()  # paused (resume re-queues this batch) or cancelled
    except LedgerMoved:
        _requeue(
            ctx, message, delay=LEDGER_RETRY_SECONDS
        )  # another campaign mailed one of them meanwhile: decide again
        return BatchResult(requeued=True)

    mailing = [c for c in landed if c.state == rules.CLAIMED]
    outcomes, sent, stop = _mail_claimed(
        ctx, campaign, facts, mailing, (first_slot, rate), sleep, message.get("variant")
    )
    finished = stop is None
    sends.settle(campaign_id, message_id, outcomes, to_rfc3339(clock()), message["batch"] if finished else None)
    if stop == rules.THROTTLED:  # again later, with only the recipients this delivery released
        attempt = int(message.get("attempt", 0)) + 1
        released = {o.contact_id for o in outcomes if o.state == rules.RELEASED}
        remaining = [[c, e] for c, e in message["recipients"] if c in released]
        _requeue(ctx, {**message, "recipients": remaining, "attempt": attempt}, delay=rules.throttle_delay(attempt))
        return BatchResult(sent=sent, requeued=True)
    if stop in (rules.QUOTA, rules.BLOCKED):
        reason = (
            "the SES daily sending quota is spent" if stop == rules.QUOTA else "SES is not sending for this account"
        )
        ctx.ports.campaigns.change_status(
            campaign_id, {rules.SENDING}, rules.PAUSED, f"{reason}; resume when it is lifted"
        )
        logger.warning(
            "campaign paused by SES", extra={"tenant_id": tenant_id, "campaign_id": campaign_id, "cause": stop}
        )
        return BatchResult(sent=sent, paused=stop)
    _finish_if_complete(ctx, campaign, clock)
    return BatchResult(sent=sent)


def _mail_claimed(
    ctx: TenantContext,
    campaign: Campaign,
    facts: RecipientFacts,
    mailing: list[Claim],
    slots: tuple[int, int],
    sleep: Callable[[float], None],
    winner: str | None = None,
) -> tuple[list[Outcome], int, str | None]:
    """Mail the claimed recipients in their send slots (``slots``: the first one, epoch ms, and the rate);
    what happened to each, how many were sent, and what stopped the rest (throttled, quota, blocked)."""
    first_slot, rate = slots
    tracked = mail.tracked(ctx, campaign.tracking)
    outcomes: list[Outcome] = []
    sent, stop = 0, None
    for position, claim in enumerate(mailing):
        if stop is not None:
            outcomes.append(Outcome(claim.contact_id, claim.email, rules.RELEASED, reason=stop))
            continue
        wait = rules.send_slot_ms(first_slot, position, rate) / 1000 - time.time()
        if wait > 0:
            sleep(wait)
        contact = contact_view(facts.contacts[claim.contact_id])
        templates, variant = _content(campaign, claim.contact_id, winner)
        tags = {"campaign_id": campaign.id, "contact_id": claim.contact_id, **({"variant": variant} if variant else {})}
        result = mail.deliver(
            ctx, campaign.sender, claim.email, templates, contact, tags, tracked=tracked, campaign_id=campaign.id
        )
        if result.status == rules.UNCERTAIN:
            logger.warning(
                "SES answer unknown; the recipient is left claimed",
                extra={"contact_id": claim.contact_id, "error": result.reason},
            )
            continue
        outcome = rules.outcome_of(claim, result.status, result.message_id, result.reason, variant)
        outcomes.append(outcome)
        sent += outcome.state == rules.DELIVERED
        stop = result.status if outcome.state == rules.RELEASED else None
    return outcomes, sent, stop


def _content(campaign: Campaign, contact_id: str, winner: str | None) -> tuple[Templates, str | None]:
    """What one recipient gets: the campaign's content, or its A/B variant (the winner for the held rest)."""
    if not campaign.variants or not campaign.ab_test:
        return Templates(campaign.subject, campaign.html, campaign.text), None
    names = [v["name"] for v in campaign.variants]
    name = winner or ab_rules.assign(campaign.id, contact_id, names, int(campaign.ab_test["test_percent"])).variant
    variant = next(v for v in campaign.variants if v["name"] == (name or names[0]))
    return Templates(variant["subject"], variant.get("html"), variant.get("text")), variant["name"]


# --- the A/B test's winner ------------------------------------------------------------------------------

DECIDE_AGAIN_SECONDS = 60
"""How soon a due decision looks again while the test's batches are still being sent (or it is paused)."""


def _decide_message(tenant_id: str, campaign_id: str) -> dict[str, Any]:
    return dict(DecideWinner(kind="ab_decide", tenant_id=tenant_id, campaign_id=campaign_id))


def decide_winner(ctx: TenantContext, campaign_id: str, clock: Clock = system_clock) -> str | None:
    """Once the wait is over and the test recipients are all settled, record the winner (once, however many
    deliveries of this message race) and queue the held rest with it; until then, look again later. The
    winner's name, once there is one."""
    campaigns = ctx.ports.campaigns
    campaign = campaigns.get(campaign_id)
    if campaign is None or campaign.status in rules.FINISHED or not campaign.ab_test or not campaign.variants:
        return None
    if campaign.winner is None:
        started = stored_moment(campaign.started_at) or clock()
        due = started + parse_duration(campaign.ab_test["wait"], "ab_test.wait")
        tested = [b for b in ctx.ports.sends.batches_of(campaign_id) if not b.held]
        waiting = campaign.status != rules.SENDING or campaign.shards_done < SHARDS or not all(b.done for b in tested)
        if clock() < due or waiting:
            later = max(DECIDE_AGAIN_SECONDS, int((due - clock()).total_seconds()))
            _requeue(ctx, _decide_message(ctx.tenant_id, campaign_id), delay=later)
            return None
        names = [v["name"] for v in campaign.variants]
        stats = ctx.ports.sends.variant_stats(campaign_id)
        chosen = ab_rules.winner(names, stats, campaign.ab_test.get("metric", "opens"), campaign.ab_test.get("winner"))
        if campaigns.record_winner(campaign_id, chosen, to_rfc3339(clock())):
            logger.info("A/B test decided", extra={"tenant_id": ctx.tenant_id, "campaign_id": campaign_id,
                                                   "winner": chosen, "variants": stats})  # fmt: skip
    current = campaigns.get(campaign_id)
    if current is not None and current.status == rules.SENDING:
        _queue_undone(ctx, campaign_id)  # again on a redelivery: claims keep every recipient to one mail
    _finish_if_complete(ctx, campaign, clock)
    return current.winner if current is not None else None


def _requeue(ctx: TenantContext, message: dict[str, Any], delay: int) -> None:
    ctx.ports.queues.send(SEND_QUEUE, [message], delay_seconds=min(delay, REQUEUE_DELAY_CAP))


def fail_batch(ctx: TenantContext, message: dict[str, Any], message_id: str, clock: Clock = system_clock) -> None:
    """A batch message that failed every delivery (the DLQ): its unclaimed recipients are marked failed and the
    batch done, so the campaign can finish and says what happened."""
    campaign_id, claim_id = message["campaign_id"], f"dlq:{message_id}"
    if message.get("kind") == "ab_decide":
        ctx.ports.campaigns.change_status(
            campaign_id, {rules.SENDING, rules.PAUSED}, rules.FAILED, "the A/B test's winner could not be chosen"
        )
        return
    if message.get("kind") != "batch":
        ctx.ports.campaigns.change_status(
            campaign_id, {rules.SENDING, rules.PAUSED}, rules.FAILED,
            f"the audience of shard {message.get('shard')} could not be built",
        )  # fmt: skip
        return
    claims = [Claim(c, e, rules.REJECTED, reason="the send worker kept failing") for c, e in message["recipients"]]
    ctx.ports.sends.claim(campaign_id, claim_id, claims, [], to_rfc3339(clock()), require_sending=False)
    ctx.ports.sends.settle(campaign_id, claim_id, [], to_rfc3339(clock()), message["batch"])
    campaign = ctx.ports.campaigns.get(campaign_id)
    if campaign is not None:
        _finish_if_complete(ctx, campaign, clock)
