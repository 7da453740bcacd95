"""Campaign rules: the lifecycle, the audience algebra, who may be mailed, and what SES errors mean.

Lifecycle::

    draft ──send──► scheduled ──(send_at reached)──► sending ──► sent
      │                 │                              │  ▲
      │                 │                          pause  resume
      │                 │                              ▼  │
      └──────────── cancel ◄──────────────────────── paused
                                     sending ──(audience or every batch failed)──► failed

Content and targets can change only in ``draft`` and ``scheduled``; from the
moment sending starts the campaign is frozen, so every worker renders the same
thing (and may cache it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from chalicelib.domain.errors import Conflict

DRAFT, SCHEDULED, SENDING, PAUSED, SENT, CANCELLED, FAILED = (
    "draft", "scheduled", "sending", "paused", "sent", "cancelled", "failed",
)  # fmt: skip
EDITABLE = frozenset({DRAFT, SCHEDULED})
FINISHED = frozenset({SENT, CANCELLED, FAILED})

RECIPIENTS_PER_MESSAGE = 49
"""Recipients per send message (API: up to 50). 49 so one claim transaction holds every
recipient's send record, its frequency-cap ledger and the campaign: 49 + 49 + 1 ≤ 100 items."""

# what happened to one recipient (a send record's state)
CLAIMED = "claimed"  # a worker is about to call SES (or crashed between the claim and SES's answer)
RELEASED = "released"  # claimed, then not sent (throttled, paused): the next claim may take it
DELIVERED = "sent"
REJECTED = "failed"
SUPPRESSED = "suppressed"
UNSUBSCRIBED = "unsubscribed"
CAPPED = "capped"  # over the tenant's frequency cap
SKIPPED = "skipped"  # the contact was deleted after the audience was taken
BOUNCED = "bounced"
COMPLAINED = "complained"
RECIPIENT_STATES = (
    CLAIMED,
    RELEASED,
    DELIVERED,
    REJECTED,
    SUPPRESSED,
    UNSUBSCRIBED,
    CAPPED,
    SKIPPED,
    BOUNCED,
    COMPLAINED,
)
NOT_MAILED = frozenset({SUPPRESSED, UNSUBSCRIBED, CAPPED, SKIPPED})
COUNTERS = (
    "claimed",
    "sent",
    "failed",
    "released",
    "suppressed",
    "unsubscribed",
    "capped",
    "skipped",
    "bounced",
    "complained",
    "delivered",
    "opened",
    "clicked",
    "opens",
    "clicks",
)
ENGAGEMENT_COUNTERS = ("delivered", "opened", "clicked", "opens", "clicks")
"""From SES's events: recipients delivered, opened, clicked (each once), and every open and click."""


def require_status(campaign_id: str, status: str, allowed: Iterable[str], action: str) -> None:
    allowed = frozenset(allowed)
    if status not in allowed:
        raise Conflict(
            f"Campaign {campaign_id} is {status}; it can {action} only when {' or '.join(sorted(allowed))}.",
            {"field": "status", "status": status},
        )


# --- audience ------------------------------------------------------------------------------------------

Ordinals = npt.NDArray[np.int64]


def audience_ordinals(targets: Iterable[Ordinals], exclusions: Iterable[Ordinals]) -> Ordinals:
    """Union of the target segments' members minus every exclusion segment's, sorted and unique."""
    targets = list(targets)
    union = np.unique(np.concatenate(targets)) if targets else np.empty(0, dtype=np.int64)
    excluded = list(exclusions)
    if excluded:
        union = np.setdiff1d(union, np.concatenate(excluded), assume_unique=False)
    return union


def unique_addresses(recipients: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(contact_id, email) pairs with each address once, compared case-insensitively; first one wins."""
    seen: set[str] = set()
    unique = []
    for contact_id, email in recipients:
        address = email.strip().lower()
        if address and address not in seen:
            seen.add(address)
            unique.append((contact_id, address))
    return unique


def batches(recipients: list[tuple[str, str]], size: int = RECIPIENTS_PER_MESSAGE) -> list[list[tuple[str, str]]]:
    return [recipients[start : start + size] for start in range(0, len(recipients), size)]


# --- who may be mailed ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrequencyCap:
    max_emails: int | None
    per_days: int

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> FrequencyCap:
        cap = settings.get("frequency_cap") or {}
        return cls(max_emails=cap.get("max_emails"), per_days=int(cap.get("per_days") or 7))

    @property
    def active(self) -> bool:
        return self.max_emails is not None

    def allows(self, sent_at: Iterable[int], now: int) -> bool:
        window_start = now - self.per_days * 86_400
        return self.max_emails is None or sum(1 for t in sent_at if t > window_start) < self.max_emails


LEDGER_DAYS = 90
"""A contact's ledger keeps the campaign sends of the longest cap window a tenant may set, and is kept
whether or not a cap is on, so a cap switched on today counts the mail of last week."""


def ledger_after_send(sent_at: Iterable[int], now: int) -> list[int]:
    return [*sorted(t for t in sent_at if t > now - LEDGER_DAYS * 86400), now]


def verdict(*, contact_exists: bool, suppression_reason: str | None, capped: bool) -> str | None:
    """What happens to one recipient before any SES call: ``None`` means mail them."""
    if not contact_exists:
        return SKIPPED
    if suppression_reason == "unsubscribed":
        return UNSUBSCRIBED
    if suppression_reason is not None:
        return SUPPRESSED
    if capped:
        return CAPPED
    return None


# --- SES outcomes --------------------------------------------------------------------------------------

THROTTLED, QUOTA, BLOCKED, REJECTED_ONE, UNCERTAIN = "throttled", "quota", "blocked", "rejected", "uncertain"


def classify_ses_error(code: str, message: str, http_status: int | None) -> str:
    """What an SES v2 ``SendEmail`` error means for the campaign.

    - throttled: the rate was exceeded; nothing was sent, retry later (via the queue);
    - quota: the daily quota is spent; pause the campaign with the reason;
    - blocked: the account cannot send (``SendingPaused``, ``AccountSuspended``); pause;
    - rejected: this message was refused (``MessageRejected``, a bad address); that recipient fails;
    - uncertain: we cannot know whether SES sent it (5xx, timeouts); never retried.
    """
    if "daily message quota" in message.lower() or code in ("LimitExceededException", "LimitExceeded"):
        return QUOTA
    if code in ("TooManyRequestsException", "Throttling", "ThrottlingException"):
        return THROTTLED
    if code in ("SendingPausedException", "AccountSuspendedException", "AccountSendingPausedException"):
        return BLOCKED
    if code in ("MessageRejected", "BadRequestException", "MailFromDomainNotVerifiedException", "NotFoundException"):
        return REJECTED_ONE
    if http_status is not None and 400 <= http_status < 500:
        return REJECTED_ONE
    return UNCERTAIN


def send_span_ms(count: int, per_second: int) -> int:
    """How long ``count`` sends take at ``per_second``: what a batch reserves of its tenant's send lane."""
    return (count * 1000) // per_second


def send_slot_ms(first_ms: int, position: int, per_second: int) -> float:
    """When the ``position``-th send of a reservation starting at ``first_ms`` may go (epoch ms)."""
    return first_ms + position * 1000 / per_second


def claims_for(
    recipients: list[tuple[str, str]], facts: RecipientFacts, cap: FrequencyCap, now_s: int
) -> tuple[list[Claim], list[Ledger]]:
    """What to write for a batch's recipients before mailing: each one's claim (CLAIMED, or the verdict that
    keeps them from mail) and, for those to mail, their frequency ledger after this send."""
    claims, ledgers = [], []
    for contact_id, email in recipients:
        ledger = facts.ledgers.get(contact_id, Ledger(contact_id, 0, []))
        capped = not cap.allows(ledger.sent_at, now_s)
        found = verdict(
            contact_exists=contact_id in facts.contacts, suppression_reason=facts.suppressions.get(email), capped=capped
        )
        claims.append(Claim(contact_id, email, found or CLAIMED))
        if found is None:
            ledgers.append(Ledger(contact_id, ledger.version, ledger_after_send(ledger.sent_at, now_s)))
    return claims, ledgers


def outcome_of(
    claim: Claim, status: str, message_id: str | None, reason: str | None, variant: str | None = None
) -> Outcome:
    """A mailed recipient's record from what SES said (DELIVERED or a ``classify_ses_error`` kind other than
    UNCERTAIN, which leaves the claim as it is): delivered, rejected, or released for a later try."""
    if status == DELIVERED:
        return Outcome(claim.contact_id, claim.email, DELIVERED, message_id=message_id, variant=variant)
    if status == REJECTED_ONE:
        return Outcome(claim.contact_id, claim.email, REJECTED, reason=reason)
    return Outcome(claim.contact_id, claim.email, RELEASED, reason=f"{status}: {reason}")


def throttle_delay(attempt: int) -> int:
    """Seconds before a throttled batch is tried again: 2, 4, 8 … up to SQS's 900."""
    return min(900, 1 << max(1, attempt))


# --- stats ---------------------------------------------------------------------------------------------


def stats(counters: dict[str, int], audience: int | None, status: str) -> dict[str, int | None]:
    """The API's stats. A claim neither settled nor released is ``unknown`` once the campaign has
    finished (its worker died between the claim and SES's answer), ``in_flight`` before."""
    claimed = counters.get("claimed", 0)
    open_claims = max(0, claimed - counters.get("sent", 0) - counters.get("failed", 0) - counters.get("released", 0))
    settled = {
        name: counters.get(name, 0) for name in ("sent", "failed", "suppressed", "unsubscribed", "capped", "skipped")
    }
    finished = status in FINISHED or status == PAUSED
    return {
        "audience": audience,
        **settled,
        "bounced": counters.get("bounced", 0),
        "complained": counters.get("complained", 0),
        **{name: counters.get(name, 0) for name in ENGAGEMENT_COUNTERS},
        "unknown": open_claims if finished else 0,
        "in_flight": 0 if finished else open_claims,
        "pending": None if audience is None else max(0, audience - sum(settled.values()) - open_claims),
    }


# --- the entities (storage/campaigns.py maps them to items) --------------------


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    sender: str
    subject: str
    html: str | None
    text: str | None
    segments: list[str]
    exclude_segments: list[str]
    send_at: str | None
    status: str
    version: int
    created_at: str
    updated_at: str
    status_reason: str | None = None
    tracking: bool | None = None  # opens and clicks tracked: None follows the tenant's settings.tracking
    variants: list[dict[str, Any]] | None = None  # an A/B test's contents (domain/ab_tests.py)
    ab_test: dict[str, Any] | None = None
    winner: str | None = None  # the A/B test's winning variant, recorded once
    winner_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    audience: int | None = None
    shards_done: int = 0
    batches_total: int = 0
    batches_done: int = 0
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    @property
    def is_ab_test(self) -> bool:
        """Sent as an A/B test: finished only once its winner is chosen, even when nobody is held for it."""
        return bool(self.variants and self.ab_test)


CONTENT = (
    "name", "sender", "subject", "html", "text", "segments", "exclude_segments", "send_at", "status",
    "status_reason", "tracking", "variants", "ab_test", "version", "created_at", "updated_at",
)  # fmt: skip
"""The fields a person edits (and a status move saves with them); the rest is the progress sending moves."""


class StaleCampaign(Exception):
    """The campaign changed (status or version) since it was read."""


class NotSending(Exception):
    """A claim found the campaign no longer sending (paused, cancelled)."""


@dataclass(frozen=True)
class Batch:
    key: str
    recipients: list[tuple[str, str]]
    done: bool
    held: bool = False  # an A/B test's rest: sent once the winner is chosen


@dataclass(frozen=True)
class Claim:
    """A recipient's record about to be written: ``state`` is CLAIMED for those to mail, else the verdict."""

    contact_id: str
    email: str
    state: str
    reason: str | None = None


@dataclass(frozen=True)
class Ledger:
    contact_id: str
    version: int  # 0: no ledger yet
    sent_at: list[int]


class LedgerMoved(Exception):
    """A frequency ledger changed between its read and the claim (another campaign mailed the contact)."""


@dataclass(frozen=True)
class RecipientRecord:
    """What happened to one recipient of a campaign (GET /campaigns/{id}/recipients)."""

    contact_id: str
    email: str
    state: str
    at: str
    reason: str | None = None
    message_id: str | None = None
    delivered_at: str | None = None
    opened_at: str | None = None
    clicked_at: str | None = None
    variant: str | None = None


@dataclass(frozen=True)
class Outcome:
    contact_id: str
    email: str
    state: str  # sent / failed / released
    message_id: str | None = None
    reason: str | None = None
    variant: str | None = None  # the A/B test variant mailed


@dataclass(frozen=True)
class RecipientFacts:
    contacts: dict[str, Any]  # contact_id → Contact
    suppressions: dict[str, str]  # email → reason
    ledgers: dict[str, Ledger]


@dataclass(frozen=True)
class Suppression:
    email: str
    reason: str
    created_at: str
    campaign_id: str | None = None
