"""Campaign rules without moto: audience algebra, who is mailed, SES errors, stats, signed tokens."""

from __future__ import annotations

import base64
import random

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain import campaigns as rules
from chalicelib.domain import tokens

SECRET = b"unit-test-secret"
ordinal_sets = st.lists(st.sets(st.integers(1, 200), max_size=60), min_size=0, max_size=4)


@given(targets=ordinal_sets.filter(bool), exclusions=ordinal_sets)
def test_the_audience_is_the_union_of_targets_minus_every_exclusion(targets, exclusions):
    found = rules.audience_ordinals(
        [np.array(sorted(t), dtype=np.int64) for t in targets],
        [np.array(sorted(e), dtype=np.int64) for e in exclusions],
    )
    expected = set().union(*targets) - set().union(*exclusions)
    assert found.tolist() == sorted(expected)


def test_addresses_are_unique_case_insensitively_and_the_first_contact_keeps_it():
    pairs = [("c1", "Ada@Example.com"), ("c2", "ada@example.com "), ("c3", "bob@example.com"), ("c4", "")]
    assert rules.unique_addresses(pairs) == [("c1", "ada@example.com"), ("c3", "bob@example.com")]


def test_batches_hold_at_most_49_recipients_and_lose_nobody():
    recipients = [(f"c{i}", f"{i}@example.com") for i in range(1000)]
    cut = rules.batches(recipients)
    assert max(len(b) for b in cut) == rules.RECIPIENTS_PER_MESSAGE <= 50
    assert [r for b in cut for r in b] == recipients


def test_the_frequency_cap_counts_sends_inside_its_window_only():
    cap = rules.FrequencyCap(max_emails=2, per_days=7)
    now = 1_000_000_000
    day = 86_400
    assert cap.allows([now - 8 * day, now - 9 * day], now)  # both outside the window
    assert cap.allows([now - day], now)
    assert not cap.allows([now - day, now - 2 * day], now)
    assert rules.ledger_after_send([now - 91 * day, now - 30 * day], now) == [now - 30 * day, now]
    assert rules.FrequencyCap.from_settings({"frequency_cap": {"max_emails": None, "per_days": 7}}).allows(
        [now] * 99, now
    )


def test_verdicts_put_deleted_before_unsubscribed_before_suppressed_before_capped():
    assert rules.verdict(contact_exists=False, suppression_reason="bounce", capped=True) == rules.SKIPPED
    assert rules.verdict(contact_exists=True, suppression_reason="unsubscribed", capped=True) == rules.UNSUBSCRIBED
    assert rules.verdict(contact_exists=True, suppression_reason="complaint", capped=True) == rules.SUPPRESSED
    assert rules.verdict(contact_exists=True, suppression_reason=None, capped=True) == rules.CAPPED
    assert rules.verdict(contact_exists=True, suppression_reason=None, capped=False) is None


def test_ses_errors_map_to_what_the_campaign_does():
    classify = rules.classify_ses_error
    assert classify("TooManyRequestsException", "Maximum sending rate exceeded.", 429) == rules.THROTTLED
    assert classify("Throttling", "Rate exceeded", 400) == rules.THROTTLED
    assert classify("Throttling", "Daily message quota exceeded.", 400) == rules.QUOTA
    assert classify("LimitExceededException", "quota", 400) == rules.QUOTA
    assert classify("SendingPausedException", "paused", 400) == rules.BLOCKED
    assert classify("AccountSuspendedException", "suspended", 400) == rules.BLOCKED
    assert classify("MessageRejected", "Email address is not verified.", 400) == rules.REJECTED_ONE
    assert classify("InternalFailure", "boom", 500) == rules.UNCERTAIN
    assert classify("ReadTimeoutError", "timed out", None) == rules.UNCERTAIN
    assert [rules.throttle_delay(n) for n in (1, 2, 3, 20)] == [2, 4, 8, 900]


def test_open_claims_are_in_flight_while_sending_and_unknown_once_finished():
    counters = {"claimed": 10, "sent": 6, "failed": 1, "released": 1, "suppressed": 2}
    sending = rules.stats(counters, 14, rules.SENDING)
    assert (sending["in_flight"], sending["unknown"], sending["pending"]) == (2, 0, 3)
    finished = rules.stats(counters, 14, rules.SENT)
    assert (finished["in_flight"], finished["unknown"]) == (0, 2)
    assert (
        finished["sent"] + finished["failed"] + finished["suppressed"] + finished["unknown"] + finished["pending"] == 14
    )


def test_a_token_round_trips_and_binds_its_purpose():
    token = tokens.seal({"t": "ten_1", "e": "ada@example.com", "c": "cmp_1"}, purpose="unsubscribe", secret=SECRET)
    assert tokens.unseal(token, purpose="unsubscribe", secret=SECRET) == {
        "t": "ten_1",
        "e": "ada@example.com",
        "c": "cmp_1",
    }
    assert tokens.unseal(token, purpose="portal", secret=SECRET) is None
    assert tokens.unseal(token, purpose="unsubscribe", secret=b"another secret") is None


def test_a_token_shows_neither_the_address_nor_the_tenant():
    token = tokens.seal({"t": "ten_1", "e": "ada@example.com", "c": "cmp_1"}, purpose="unsubscribe", secret=SECRET)
    opened = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"ada" not in opened and b"ten_1" not in opened and b"cmp_1" not in opened and "ada" not in token


def test_ten_thousand_mutated_tokens_are_all_refused():
    token = tokens.seal({"t": "ten_1", "e": "ada@example.com", "c": "cmp_1"}, purpose="unsubscribe", secret=SECRET)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/%"
    rng = random.Random(11)
    accepted = 0
    for _ in range(10_000):
        chars = list(token)
        for _ in range(rng.randint(1, 3)):
            kind = rng.random()
            position = rng.randrange(len(chars))
            if kind < 0.6:
                chars[position] = rng.choice([c for c in alphabet if c != chars[position]])
            elif kind < 0.8:
                del chars[position]
            else:
                chars.insert(position, rng.choice(alphabet))
        mutated = "".join(chars)
        if mutated != token and tokens.unseal(mutated, purpose="unsubscribe", secret=SECRET) is not None:
            accepted += 1
    assert accepted == 0
    assert tokens.unseal(token, purpose="unsubscribe", secret=SECRET) is not None  # the original still works


def test_forged_and_malformed_tokens_are_refused_without_errors():
    forged_body = tokens.seal({"t": "ten_2", "e": "x@example.com", "c": None}, purpose="unsubscribe", secret=b"guess")
    for bad in (forged_body, "", ".", "a.b", "a.b.c", "é.é", "x" * 5000, "%00.%00", "eyJ9.AAAA"):
        assert tokens.unseal(bad, purpose="unsubscribe", secret=SECRET) is None


def test_a_reservation_spans_its_sends_at_the_rate_and_spaces_them_evenly():
    from chalicelib.domain.campaigns import send_slot_ms, send_span_ms

    assert send_span_ms(49, 14) == 3500 and send_span_ms(1, 1000) == 1
    slots = [send_slot_ms(1_000_000, position, 4) for position in range(5)]
    assert slots == [1_000_000, 1_000_250, 1_000_500, 1_000_750, 1_001_000]


def test_a_batch_claims_only_who_may_be_mailed_and_moves_only_their_ledgers():
    from chalicelib.domain.campaigns import (
        CAPPED,
        CLAIMED,
        SKIPPED,
        SUPPRESSED,
        UNSUBSCRIBED,
        FrequencyCap,
        Ledger,
        RecipientFacts,
        claims_for,
    )

    now = 1_000_000
    facts = RecipientFacts(
        contacts={c: object() for c in ("c1", "c2", "c3", "c4")},
        suppressions={"b@x.io": "bounce", "u@x.io": "unsubscribed"},
        ledgers={"c4": Ledger("c4", 3, [now - 60, now - 120]), "c1": Ledger("c1", 1, [now - 30 * 86_400])},
    )
    recipients = [("c1", "a@x.io"), ("c2", "b@x.io"), ("c3", "u@x.io"), ("c4", "d@x.io"), ("gone", "g@x.io")]
    claims, ledgers = claims_for(recipients, facts, FrequencyCap(max_emails=2, per_days=7), now)
    assert [c.state for c in claims] == [CLAIMED, SUPPRESSED, UNSUBSCRIBED, CAPPED, SKIPPED]
    assert [(ledger.contact_id, ledger.version) for ledger in ledgers] == [("c1", 1)]
    assert now in ledgers[0].sent_at


def test_what_ses_said_becomes_the_recipient_record():
    from chalicelib.domain.campaigns import DELIVERED, QUOTA, REJECTED, REJECTED_ONE, RELEASED, Claim, outcome_of

    claim = Claim("c1", "a@x.io", "claimed")
    assert outcome_of(claim, "sent", "msg-1", None).state == DELIVERED
    assert outcome_of(claim, "sent", "msg-1", None).message_id == "msg-1"
    assert outcome_of(claim, REJECTED_ONE, None, "MessageRejected: no").state == REJECTED
    released = outcome_of(claim, QUOTA, None, "LimitExceeded: quota")
    assert (released.state, released.reason) == (RELEASED, "quota: LimitExceeded: quota")
