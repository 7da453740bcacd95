"""Sending a campaign: the audience snapshot, each recipient's send record, the frequency ledgers, and the
tenant's send rate.

| item | pk | sk |
| --- | --- | --- |
| audience build of a shard | ``TENANT#{t}#CAMPAIGN#{id}`` | ``A#{shard:02d}`` |
| batch of ≤49 recipients | ``TENANT#{t}#CAMPAIGN#{id}`` | ``B#{shard:02d}#{n:05d}`` |
| send record | ``TENANT#{t}#CAMPAIGN#{id}`` | ``S#{contact_id}`` |
| frequency ledger of a contact | ``TENANT#{t}#SHARD#{nn}`` | ``ML#{contact_id}`` |
| tenant send-rate cursor | ``TENANT#{t}`` | ``#SENDRATE`` |

The **batches** are the audience snapshot: written once per shard under a lease
(a crashed build is redone whole by the next delivery; a second concurrent
delivery waits), then queued. The **send record** of a recipient is claimed
(conditional put) before the SES call and settled after it: that is what keeps
redelivery, retries, pause and resume from mailing anyone twice.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.ab_tests import VARIANT_COUNTERS
from chalicelib.domain.campaigns import (
    CLAIMED,
    DELIVERED,
    RELEASED,
    Batch,
    Claim,
    Ledger,
    LedgerMoved,
    NotSending,
    Outcome,
    RecipientFacts,
    RecipientRecord,
    send_span_ms,
)
from chalicelib.domain.contacts import ordinal_of, shard_of
from chalicelib.domain.mail_events import TOTALS, RecipientEvent
from chalicelib.storage.campaigns import CampaignItem, campaign_key, campaign_own_pk
from chalicelib.storage.contacts import ContactItem, contact_from_item
from chalicelib.storage.mapping import Mapper
from chalicelib.storage.suppressions import suppressions_pk
from chalicelib.storage.table import (
    AppliedEventItem,
    MainTableModel,
    apply_once,
    cancellation_reasons,
    connection,
    shard_pk,
)
from chalicelib.storage.tenants import tenant_pk


class AudienceBuildItem(MainTableModel):
    state = UnicodeAttribute()  # building / built
    build_id = UnicodeAttribute()
    lease_until = NumberAttribute()  # epoch ms
    batches = NumberAttribute(null=True)


class BatchItem(MainTableModel):
    recipients = UnicodeAttribute()  # JSON [[contact_id, email], …]
    state = UnicodeAttribute()  # queued / done
    build_id = UnicodeAttribute()
    held = NumberAttribute(null=True)  # 1: an A/B test's rest, sent once the winner is chosen


class VariantItem(MainTableModel):
    """One A/B test variant's counters, in the campaign's partition (``V#{name}``)."""

    sent = NumberAttribute(null=True)
    delivered = NumberAttribute(null=True)
    opened = NumberAttribute(null=True)
    clicked = NumberAttribute(null=True)
    opens = NumberAttribute(null=True)
    clicks = NumberAttribute(null=True)


class SendItem(MainTableModel):
    contact_id = UnicodeAttribute()
    email = UnicodeAttribute()
    state = UnicodeAttribute()
    claim = UnicodeAttribute(null=True)
    at = UnicodeAttribute()
    message_id = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    delivered_at = UnicodeAttribute(null=True)
    opened_at = UnicodeAttribute(null=True)
    clicked_at = UnicodeAttribute(null=True)
    variant = UnicodeAttribute(null=True)


MAIL_EVENT_KEPT_SECONDS = 7 * 86_400
"""How long an SES event already counted (``EV#{key}`` in the campaign's partition) is remembered."""


class LedgerItem(MainTableModel):
    sent_at = UnicodeAttribute()  # JSON list of epoch seconds inside the cap window
    version = NumberAttribute()


class SendRateItem(MainTableModel):
    next_ms = NumberAttribute()


def _batch(item: BatchItem) -> Batch:
    recipients = [tuple(r) for r in json.loads(item.recipients)]
    return Batch(key=item.sk, recipients=recipients, done=item.state == "done", held=bool(item.held))


RECORD_MAPPER = Mapper(RecipientRecord, SendItem)
"""A recipient's record is the SendItem attributes of the same names (storage/mapping.py)."""
_record = RECORD_MAPPER.entity


def _send_item(campaign_pk: str, claim_id: str, record: RecipientRecord) -> SendItem:
    """A whole send record, held by ``claim_id`` (puts cost moto a fifth of what updates do)."""
    return SendItem(campaign_pk, f"S#{record.contact_id}", claim=claim_id, **RECORD_MAPPER.attributes(record))


def _ledger_pk(tenant_id: str, contact_id: str) -> str:
    ordinal = ordinal_of(contact_id)
    assert ordinal is not None  # recipients are contacts
    return shard_pk(tenant_id, shard_of(ordinal))


def batch_get_raw(keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Raw items for keys of any item types, 100 keys a request, unprocessed keys retried."""
    client = MainTableModel._get_connection().connection.client
    table = MainTableModel.Meta.table_name
    found: list[dict[str, Any]] = []
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), 100):
        request = {
            table: {
                "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in unique[start : start + 100]],
                "ConsistentRead": True,
            }
        }
        while request:
            response = client.batch_get_item(RequestItems=request)
            found += response["Responses"].get(table, [])
            request = response.get("UnprocessedKeys") or {}
    return found


@dataclass(frozen=True)
class _EngagementPlan:
    """What one recipient's new events write: their markers, its first times ``kind → (at, as read)``, the counts."""

    contact_id: str
    events: list[RecipientEvent]
    moments: dict[str, tuple[str, str | None]]
    counts: Counter[str]
    variant: str | None  # the A/B test variant the recipient got: its counters move too

    @classmethod
    def of(cls, events: list[RecipientEvent], record: dict[str, Any] | None) -> _EngagementPlan:
        counts = Counter(TOTALS[e.kind] for e in events if e.kind in TOTALS)
        moments: dict[str, tuple[str, str | None]] = {}
        for kind in sorted({e.kind for e in events}):
            earliest = min(e.at for e in events if e.kind == kind)
            if record is None:
                continue  # no recipient record (a test send, say): only the totals count
            before = record.get(f"{kind}_at", {}).get("S")
            if before is None:
                counts[kind] += 1
            if before is None or earliest < before:
                moments[kind] = (earliest, before)
        return cls(events[0].contact_id, events, moments, counts, events[0].variant)

    @property
    def writes(self) -> int:
        return len(self.events) + bool(self.moments)


def _by_transaction(plans: list[_EngagementPlan], most: int = 99) -> list[list[_EngagementPlan]]:
    """Plans in groups whose writes fit one transaction beside the campaign's counters (100 at most)."""
    groups: list[list[_EngagementPlan]] = []
    size = most
    for plan in plans:
        if size + plan.writes > most:
            groups.append([])
            size = 0
        groups[-1].append(plan)
        size += plan.writes
    return groups


class SendTable:
    """The SendLedger port on DynamoDB, bound to one tenant."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def acquire_build(self, campaign_id: str, shard: int, build_id: str, now_ms: int, lease_ms: int) -> str:
        """``acquired`` (build it), ``built`` (it exists: queue what is left) or ``busy`` (another delivery has it)."""
        item = AudienceBuildItem(campaign_own_pk(self.tenant_id, campaign_id), f"A#{shard:02d}")
        condition = AudienceBuildItem.pk.does_not_exist() | (
            (AudienceBuildItem.state == "building") & (AudienceBuildItem.lease_until < now_ms)
        )
        try:
            item.update(
                actions=[
                    AudienceBuildItem.state.set("building"),
                    AudienceBuildItem.build_id.set(build_id),
                    AudienceBuildItem.lease_until.set(now_ms + lease_ms),
                ],
                condition=condition,
            )
            return "acquired"
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
        current = AudienceBuildItem.get(item.pk, item.sk, consistent_read=True)
        return "built" if current.state == "built" else "busy"

    def write_batches(
        self,
        campaign_id: str,
        shard: int,
        build_id: str,
        batches: list[list[tuple[str, str]]],
        held_from: int | None = None,
    ) -> None:
        """Write this build's batches of a shard, replacing whatever an earlier, crashed build left."""
        pk = campaign_own_pk(self.tenant_id, campaign_id)
        keep = {f"B#{shard:02d}#{n:05d}" for n in range(len(batches))}
        stale = [
            i
            for i in BatchItem.query(pk, BatchItem.sk.startswith(f"B#{shard:02d}#"), attributes_to_get=["pk", "sk"])
            if i.sk not in keep
        ]
        with BatchItem.batch_write() as writer:
            for item in stale:
                writer.delete(item)
            for n, recipients in enumerate(batches):
                writer.save(
                    BatchItem(
                        pk,
                        f"B#{shard:02d}#{n:05d}",
                        recipients=json.dumps(recipients),
                        state="queued",
                        build_id=build_id,
                        held=1 if held_from is not None and n >= held_from else None,
                    )
                )

    def finish_build(self, campaign_id: str, shard: int, build_id: str, batches: int, audience: int) -> bool:
        """Mark the shard built and add its batches and audience to the campaign, once. False if another build won."""
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.update(
                    AudienceBuildItem(campaign_own_pk(self.tenant_id, campaign_id), f"A#{shard:02d}"),
                    actions=[AudienceBuildItem.state.set("built"), AudienceBuildItem.batches.set(batches)],
                    condition=(AudienceBuildItem.state == "building") & (AudienceBuildItem.build_id == build_id),
                )
                transaction.update(
                    CampaignItem(*campaign_key(self.tenant_id, campaign_id)),
                    actions=[
                        CampaignItem.shards_done.add(1),
                        CampaignItem.batches_total.add(batches),
                        CampaignItem.audience.add(audience),
                    ],
                )
            return True
        except TransactWriteError as error:
            if "ConditionalCheckFailed" in cancellation_reasons(error):
                return False
            raise

    def batches_of(self, campaign_id: str, shard: int | None = None) -> list[Batch]:
        prefix = "B#" if shard is None else f"B#{shard:02d}#"
        return [
            _batch(i)
            for i in BatchItem.query(
                campaign_own_pk(self.tenant_id, campaign_id), BatchItem.sk.startswith(prefix), consistent_read=True
            )
        ]

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
        """Write the records of ``claims`` in one transaction, conditioned on each recipient being unclaimed (or
        released) and on the campaign still sending; the frequency ledgers of those about to be mailed move too.
        A ``continuing`` delivery (the recipients a throttled delivery released) may also claim in a campaign that
        a duplicate delivery of the same batch marked sent meanwhile: those recipients were never mailed.

        Returns the claims that landed; recipients someone else holds are dropped (and the rest retried).
        Raises NotSending if the campaign is paused or cancelled.
        """
        sending = CampaignItem.status.is_in("sending", "sent") if continuing else CampaignItem.status == "sending"
        pk = campaign_own_pk(self.tenant_id, campaign_id)
        pending, ledgers_by_contact = list(claims), {ledger.contact_id: ledger for ledger in ledgers}
        while pending:
            counts: dict[str, int] = {}
            operations: list[tuple[str, Any]] = []
            try:
                with TransactWrite(connection=connection()) as transaction:
                    for c in pending:
                        record = _send_item(pk, claim_id, RecipientRecord(c.contact_id, c.email, c.state, at, c.reason))
                        transaction.save(record, condition=SendItem.pk.does_not_exist() | (SendItem.state == RELEASED))
                        operations.append(("record", c))
                        counter = "claimed" if c.state == CLAIMED else c.state
                        counts[counter] = counts.get(counter, 0) + 1
                    for c in pending:
                        ledger = ledgers_by_contact.get(c.contact_id)
                        if ledger is None or c.state != CLAIMED:
                            continue
                        item = LedgerItem(_ledger_pk(self.tenant_id, c.contact_id), f"ML#{c.contact_id}")
                        condition = (
                            LedgerItem.version == ledger.version if ledger.version else LedgerItem.pk.does_not_exist()
                        )
                        item.sent_at, item.version = json.dumps(ledger.sent_at), ledger.version + 1
                        transaction.save(item, condition=condition)
                        operations.append(("ledger", c))
                    transaction.update(
                        CampaignItem(*campaign_key(self.tenant_id, campaign_id)),
                        actions=[getattr(CampaignItem, name).add(n) for name, n in counts.items()],
                        condition=sending if require_sending else None,
                    )
                return pending
            except TransactWriteError as error:
                reasons = cancellation_reasons(error)
                if not reasons or ("ConditionalCheckFailed" not in reasons and "TransactionConflict" not in reasons):
                    raise
                if reasons[-1] == "ConditionalCheckFailed":
                    raise NotSending(campaign_id) from error
                taken = {
                    operations[i][1].contact_id for i, r in enumerate(reasons[:-1]) if r == "ConditionalCheckFailed"
                }
                if any(
                    operations[i][0] == "ledger" for i, r in enumerate(reasons[:-1]) if r == "ConditionalCheckFailed"
                ):
                    raise LedgerMoved(campaign_id) from error
                pending = [c for c in pending if c.contact_id not in taken]
        return []

    def settle(self, campaign_id: str, claim_id: str, outcomes: list[Outcome], at: str, batch_key: str | None) -> None:
        """Record what SES said for each claimed recipient, add the counts, and (``batch_key``) mark the batch done,
        all in one transaction. A batch already marked done by a duplicate delivery is not counted twice."""
        pk = campaign_own_pk(self.tenant_id, campaign_id)
        while True:
            counts: dict[str, int] = {}
            try:
                with TransactWrite(connection=connection()) as transaction:
                    sent_by_variant: Counter[str] = Counter()
                    for outcome in outcomes:
                        o = outcome
                        answered = RecipientRecord(
                            o.contact_id, o.email, o.state, at, o.reason, o.message_id, variant=o.variant
                        )
                        record = _send_item(pk, claim_id, answered)
                        transaction.save(record, condition=(SendItem.claim == claim_id) & (SendItem.state == CLAIMED))
                        counts[outcome.state] = counts.get(outcome.state, 0) + 1
                        if o.variant and o.state == DELIVERED:
                            sent_by_variant[o.variant] += 1
                    for variant, sent in sorted(sent_by_variant.items()):
                        transaction.update(VariantItem(pk, f"V#{variant}"), actions=[VariantItem.sent.add(sent)])
                    if batch_key:
                        transaction.update(
                            BatchItem(pk, batch_key),
                            actions=[BatchItem.state.set("done")],
                            condition=BatchItem.state != "done",
                        )
                        counts["batches_done"] = 1
                    if counts:
                        transaction.update(
                            CampaignItem(*campaign_key(self.tenant_id, campaign_id)),
                            actions=[getattr(CampaignItem, name).add(n) for name, n in counts.items()],
                        )
                return
            except TransactWriteError as error:
                reasons = cancellation_reasons(error)
                if batch_key and len(reasons) > len(outcomes) and reasons[len(outcomes)] == "ConditionalCheckFailed":
                    batch_key = None  # a duplicate delivery finished the batch first
                    if not outcomes:
                        return
                    continue
                raise

    def variant_stats(self, campaign_id: str) -> dict[str, dict[str, int]]:
        found = VariantItem.query(campaign_own_pk(self.tenant_id, campaign_id), VariantItem.sk.startswith("V#"))
        return {item.sk[2:]: {name: int(getattr(item, name) or 0) for name in VARIANT_COUNTERS} for item in found}

    def send_records(
        self, campaign_id: str, state: str | None, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[RecipientRecord], dict[str, Any] | None]:
        result = SendItem.query(
            campaign_own_pk(self.tenant_id, campaign_id),
            SendItem.sk.startswith("S#"),
            filter_condition=(SendItem.state == state) if state else None,
            limit=limit,
            last_evaluated_key=start,
        )
        records = [_record(item) for item in result]
        return records, result.last_evaluated_key

    def all_send_records(self, campaign_id: str) -> list[RecipientRecord]:
        items = SendItem.query(
            campaign_own_pk(self.tenant_id, campaign_id), SendItem.sk.startswith("S#"), consistent_read=True
        )
        return [_record(item) for item in items]

    def mark_feedback(self, campaign_id: str, contact_id: str, state: str) -> bool:
        """sent → bounced / complained, and count it, once (a redelivered notification changes nothing)."""
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.update(
                    SendItem(campaign_own_pk(self.tenant_id, campaign_id), f"S#{contact_id}"),
                    actions=[SendItem.state.set(state)],
                    condition=SendItem.state == "sent",
                )
                transaction.update(
                    CampaignItem(*campaign_key(self.tenant_id, campaign_id)),
                    actions=[getattr(CampaignItem, state).add(1)],
                )
            return True
        except TransactWriteError as error:
            if "ConditionalCheckFailed" in cancellation_reasons(error):
                return False
            raise

    def record_engagements(self, campaign_id: str, engagements: list[RecipientEvent]) -> int:
        """One read of the events' markers and recipients, then one transaction per hundred writes: the markers,
        each recipient's first times (conditioned on what was read) and the campaign's counters, added up. A
        transaction that finds something changed since the read (another worker counted some meanwhile) is
        cancelled whole, and its events take the one-at-a-time path, which decides each on its own."""
        pk = campaign_own_pk(self.tenant_id, campaign_id)
        unique = list({engagement.key: engagement for engagement in engagements}.values())
        contact_ids = sorted({engagement.contact_id for engagement in unique})
        read = batch_get_raw([(pk, f"EV#{e.key}") for e in unique] + [(pk, f"S#{c}") for c in contact_ids])
        counted_before = {raw["sk"]["S"][3:] for raw in read if raw["sk"]["S"].startswith("EV#")}
        records = {raw["sk"]["S"][2:]: raw for raw in read if raw["sk"]["S"].startswith("S#")}
        per_recipient: dict[str, list[RecipientEvent]] = {}
        for engagement in unique:
            if engagement.key not in counted_before:
                per_recipient.setdefault(engagement.contact_id, []).append(engagement)
        plans = [_EngagementPlan.of(events, records.get(contact_id)) for contact_id, events in per_recipient.items()]
        counted = 0
        for chunk in _by_transaction(plans):
            counted += self._commit_engagements(campaign_id, chunk)
        return counted

    def _commit_engagements(self, campaign_id: str, plans: list[_EngagementPlan]) -> int:
        variants = {plan.variant for plan in plans if plan.variant}
        if sum(plan.writes for plan in plans) + len(variants) > 99:  # one recipient with a hundred events
            return sum(self._record_engagement(campaign_id, e) for plan in plans for e in plan.events)
        pk = campaign_own_pk(self.tenant_id, campaign_id)
        counts: Counter[str] = Counter()
        by_variant: dict[str, Counter[str]] = {}
        try:
            with TransactWrite(connection=connection()) as transaction:
                for plan in plans:
                    for engagement in plan.events:
                        marker = AppliedEventItem(
                            pk, f"EV#{engagement.key}", expires_at=int(time.time()) + MAIL_EVENT_KEPT_SECONDS
                        )
                        transaction.save(marker, condition=AppliedEventItem.sk.does_not_exist())
                    if plan.moments:
                        condition = SendItem.pk.exists()
                        for kind, (_, before) in plan.moments.items():
                            moment = getattr(SendItem, f"{kind}_at")
                            condition &= moment.does_not_exist() if before is None else moment == before
                        actions = [getattr(SendItem, f"{kind}_at").set(at) for kind, (at, _) in plan.moments.items()]
                        transaction.update(SendItem(pk, f"S#{plan.contact_id}"), actions=actions, condition=condition)
                    counts.update(plan.counts)
                    if plan.variant:
                        by_variant.setdefault(plan.variant, Counter()).update(plan.counts)
                for variant, moved in sorted(by_variant.items()):
                    if moved:
                        added = [getattr(VariantItem, name).add(n) for name, n in sorted(moved.items())]
                        transaction.update(VariantItem(pk, f"V#{variant}"), actions=added)
                if counts:
                    added = [getattr(CampaignItem, name).add(count) for name, count in sorted(counts.items())]
                    transaction.update(CampaignItem(*campaign_key(self.tenant_id, campaign_id)), actions=added)
        except TransactWriteError as error:
            if "ConditionalCheckFailed" not in cancellation_reasons(error):
                raise
            return sum(self._record_engagement(campaign_id, e) for plan in plans for e in plan.events)
        return sum(len(plan.events) for plan in plans)

    def _record_engagement(self, campaign_id: str, engagement: RecipientEvent) -> bool:
        """One event on its own: its marker and total in one transaction, then the recipient's first time."""
        contact_id, kind, event_key, at = engagement.contact_id, engagement.kind, engagement.key, engagement.at
        pk = campaign_own_pk(self.tenant_id, campaign_id)
        campaign = CampaignItem(*campaign_key(self.tenant_id, campaign_id))

        variant = VariantItem(pk, f"V#{engagement.variant}") if engagement.variant else None

        def add_to_total(transaction: TransactWrite) -> None:
            if kind in TOTALS:
                transaction.update(campaign, actions=[getattr(CampaignItem, TOTALS[kind]).add(1)])
                if variant is not None:
                    transaction.update(variant, actions=[getattr(VariantItem, TOTALS[kind]).add(1)])

        counted = apply_once(pk, f"EV#{event_key}", MAIL_EVENT_KEPT_SECONDS, add_to_total)
        # the recipient's first one (its own condition: once, even after a stop between the two writes)
        recipient = SendItem(pk, f"S#{contact_id}")
        moment = getattr(SendItem, f"{kind}_at")
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.update(
                    recipient, actions=[moment.set(at)], condition=SendItem.pk.exists() & moment.does_not_exist()
                )
                transaction.update(campaign, actions=[getattr(CampaignItem, kind).add(1)])
                if variant is not None:
                    transaction.update(variant, actions=[getattr(VariantItem, kind).add(1)])
        except TransactWriteError as error:
            if "ConditionalCheckFailed" not in cancellation_reasons(error):
                raise
            try:  # an earlier event arriving later: its time is the first
                recipient.update(actions=[moment.set(at)], condition=SendItem.pk.exists() & (moment > at))
            except UpdateError as failed:
                if failed.cause_response_code != "ConditionalCheckFailedException":
                    raise
        return counted

    def recipient_facts(self, recipients: list[tuple[str, str]]) -> RecipientFacts:
        """Contacts, suppressions and frequency ledgers of a batch's recipients (two BatchGetItem calls for 49)."""
        keys: list[tuple[str, str]] = []
        for contact_id, email in recipients:
            ordinal = ordinal_of(contact_id)
            if ordinal is None:
                continue
            keys.append((shard_pk(self.tenant_id, shard_of(ordinal)), f"C#{contact_id}"))
            keys.append((suppressions_pk(self.tenant_id), f"E#{email}"))
            keys.append((shard_pk(self.tenant_id, shard_of(ordinal)), f"ML#{contact_id}"))
        facts = RecipientFacts({}, {}, {})
        for raw in batch_get_raw(keys):
            sk = raw["sk"]["S"]
            if sk.startswith("C#"):
                contact = contact_from_item(ContactItem.from_raw_data(raw))
                facts.contacts[contact.id] = contact
            elif sk.startswith("E#"):
                facts.suppressions[raw["email"]["S"]] = raw["reason"]["S"]
            else:
                ledger = LedgerItem.from_raw_data(raw)
                contact_id = sk[3:]
                facts.ledgers[contact_id] = Ledger(contact_id, int(ledger.version), json.loads(ledger.sent_at))
        return facts

    def reserve_send_slots(self, count: int, per_second: int, now_ms: int, max_ahead_ms: int) -> int | None:
        """Reserve ``count`` send slots at ``per_second`` across every worker of the tenant; return when the
        first slot starts (epoch ms; slot *i* is at ``start + i * 1000 / per_second``), or None, reserving
        nothing, when the first free slot is more than ``max_ahead_ms`` away.

        The tenant's lane is one number, the end of the last reservation; it only grows. One write when the
        lane is idle (it ends before now: start now), two when it is busy (then append to it atomically with
        ADD, unless it already reaches past ``max_ahead_ms``). Nothing is read first and nothing is retried.
        """
        span = send_span_ms(count, per_second)
        lane = SendRateItem(tenant_pk(self.tenant_id), "#SENDRATE")
        try:
            lane.update(
                actions=[SendRateItem.next_ms.set(now_ms + span)],
                condition=SendRateItem.pk.does_not_exist() | (SendRateItem.next_ms <= now_ms),
            )
            return now_ms
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
        try:  # busy: it ended after now_ms when we looked, and it never shrinks, so our start is after now_ms too
            lane.update(
                actions=[SendRateItem.next_ms.add(span)], condition=SendRateItem.next_ms <= now_ms + max_ahead_ms
            )
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            return None
        return int(lane.next_ms) - span
