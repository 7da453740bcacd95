"""Campaigns, their audience snapshot and send records; suppressions; frequency ledgers; the send rate.

| item | pk | sk |
| --- | --- | --- |
| campaign | ``TENANT#{t}`` | ``CAMPAIGN#{id}`` |
| audience build of a shard | ``TENANT#{t}#CAMPAIGN#{id}`` | ``A#{shard:02d}`` |
| batch of ≤49 recipients | ``TENANT#{t}#CAMPAIGN#{id}`` | ``B#{shard:02d}#{n:05d}`` |
| send record | ``TENANT#{t}#CAMPAIGN#{id}`` | ``S#{contact_id}`` |
| suppressed address | ``TENANT#{t}#SUPPRESSIONS`` | ``E#{email}`` |
| frequency ledger of a contact | ``TENANT#{t}#SHARD#{nn}`` | ``ML#{contact_id}`` |
| tenant send-rate cursor | ``TENANT#{t}`` | ``#SENDRATE`` |

Scheduled campaigns are also in the sparse gsi1 partition ``CAMPAIGNS#SCHEDULED``
(sort key ``{send_at}#{tenant}#{campaign}``), which the minute schedule reads.

The **batches** are the audience snapshot: written once per shard under a lease
(a crashed build is redone whole by the next delivery; a second concurrent
delivery waits), then queued. The **send record** of a recipient is claimed
(conditional put) before the SES call and settled after it: that is what keeps
redelivery, retries, pause and resume from mailing anyone twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.domain.campaigns import (
    CLAIMED,
    COUNTERS,
    RELEASED,
    SCHEDULED,
    Batch,
    Campaign,
    Claim,
    Ledger,
    LedgerMoved,
    NotSending,
    Outcome,
    RecipientFacts,
    RecipientRecord,
    StaleCampaign,
    Suppression,
)
from chalicelib.domain.contacts import ordinal_of, shard_of
from chalicelib.storage.contacts import ContactItem, contact_from_item
from chalicelib.storage.table import Gsi1, MainTableModel, cancellation_reasons, connection, shard_pk
from chalicelib.storage.tenants import tenant_pk

SCHEDULED_INDEX = "CAMPAIGNS#SCHEDULED"


class CampaignItem(MainTableModel):
    campaign_id = UnicodeAttribute()
    name = UnicodeAttribute()
    sender = UnicodeAttribute()
    subject = UnicodeAttribute()
    html = UnicodeAttribute(null=True)
    text = UnicodeAttribute(null=True)
    segments = UnicodeAttribute()  # JSON list
    exclude_segments = UnicodeAttribute()  # JSON list
    send_at = UnicodeAttribute(null=True)
    status = UnicodeAttribute()
    status_reason = UnicodeAttribute(null=True)
    version = NumberAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    started_at = UnicodeAttribute(null=True)
    finished_at = UnicodeAttribute(null=True)
    audience = NumberAttribute(null=True)
    shards_done = NumberAttribute(null=True)
    batches_total = NumberAttribute(null=True)
    batches_done = NumberAttribute(null=True)
    claimed = NumberAttribute(null=True)
    sent = NumberAttribute(null=True)
    failed = NumberAttribute(null=True)
    released = NumberAttribute(null=True)
    suppressed = NumberAttribute(null=True)
    unsubscribed = NumberAttribute(null=True)
    capped = NumberAttribute(null=True)
    skipped = NumberAttribute(null=True)
    bounced = NumberAttribute(null=True)
    complained = NumberAttribute(null=True)
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi1 = Gsi1()


class AudienceBuildItem(MainTableModel):
    state = UnicodeAttribute()  # building / built
    build_id = UnicodeAttribute()
    lease_until = NumberAttribute()  # epoch ms
    batches = NumberAttribute(null=True)


class BatchItem(MainTableModel):
    recipients = UnicodeAttribute()  # JSON [[contact_id, email], …]
    state = UnicodeAttribute()  # queued / done
    build_id = UnicodeAttribute()


class SendItem(MainTableModel):
    contact_id = UnicodeAttribute()
    email = UnicodeAttribute()
    state = UnicodeAttribute()
    claim = UnicodeAttribute(null=True)
    at = UnicodeAttribute()
    message_id = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)


class SuppressionItem(MainTableModel):
    email = UnicodeAttribute()
    reason = UnicodeAttribute()  # bounce / complaint / manual / unsubscribed
    created_at = UnicodeAttribute()
    campaign_id = UnicodeAttribute(null=True)


class LedgerItem(MainTableModel):
    sent_at = UnicodeAttribute()  # JSON list of epoch seconds inside the cap window
    version = NumberAttribute()


class SendRateItem(MainTableModel):
    next_ms = NumberAttribute()


def campaign_key(tenant_id: str, campaign_id: str) -> tuple[str, str]:
    return tenant_pk(tenant_id), f"CAMPAIGN#{campaign_id}"


def _own_pk(tenant_id: str, campaign_id: str) -> str:
    return f"TENANT#{tenant_id}#CAMPAIGN#{campaign_id}"


def _campaign(item: CampaignItem) -> Campaign:
    return Campaign(
        id=item.campaign_id,
        name=item.name,
        sender=item.sender,
        subject=item.subject,
        html=item.html,
        text=item.text,
        segments=json.loads(item.segments),
        exclude_segments=json.loads(item.exclude_segments),
        send_at=item.send_at,
        status=item.status,
        version=int(item.version),
        created_at=item.created_at,
        updated_at=item.updated_at,
        status_reason=item.status_reason,
        started_at=item.started_at,
        finished_at=item.finished_at,
        audience=None if item.audience is None else int(item.audience),
        shards_done=int(item.shards_done or 0),
        batches_total=int(item.batches_total or 0),
        batches_done=int(item.batches_done or 0),
        counters={name: int(getattr(item, name) or 0) for name in COUNTERS},
    )


def _scheduled_keys(tenant_id: str, campaign: Campaign) -> dict[str, str | None]:
    if campaign.status == SCHEDULED and campaign.send_at:
        return {"gsi1pk": SCHEDULED_INDEX, "gsi1sk": f"{campaign.send_at}#{tenant_id}#{campaign.id}"}
    return {"gsi1pk": None, "gsi1sk": None}


def _content_fields(tenant_id: str, campaign: Campaign) -> dict[str, Any]:
    return {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "sender": campaign.sender,
        "subject": campaign.subject,
        "html": campaign.html,
        "text": campaign.text,
        "segments": json.dumps(campaign.segments),
        "exclude_segments": json.dumps(campaign.exclude_segments),
        "send_at": campaign.send_at,
        "status": campaign.status,
        "status_reason": campaign.status_reason,
        "version": campaign.version,
        "created_at": campaign.created_at,
        "updated_at": campaign.updated_at,
        **_scheduled_keys(tenant_id, campaign),
    }


def create(tenant_id: str, campaign: Campaign) -> None:
    CampaignItem(*campaign_key(tenant_id, campaign.id), **_content_fields(tenant_id, campaign)).save(
        condition=CampaignItem.pk.does_not_exist()
    )


def save_content(tenant_id: str, before: Campaign, after: Campaign) -> None:
    """Save an edit (content, targets, schedule) if nobody changed the campaign since ``before``."""
    item = CampaignItem(*campaign_key(tenant_id, before.id))
    actions = []
    for name, value in _content_fields(tenant_id, after).items():
        attribute = getattr(CampaignItem, name)
        actions.append(attribute.remove() if value is None else attribute.set(value))
    try:
        item.update(
            actions=actions, condition=(CampaignItem.version == before.version) & (CampaignItem.status == before.status)
        )
    except UpdateError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise StaleCampaign(before.id) from error
        raise


def get(tenant_id: str, campaign_id: str) -> Campaign | None:
    try:
        return _campaign(CampaignItem.get(*campaign_key(tenant_id, campaign_id), consistent_read=True))
    except DoesNotExist:
        return None


def page(tenant_id: str, limit: int, start: dict[str, Any] | None) -> tuple[list[Campaign], dict[str, Any] | None]:
    result = CampaignItem.query(
        tenant_pk(tenant_id), CampaignItem.sk.startswith("CAMPAIGN#"), limit=limit, last_evaluated_key=start
    )
    items = [_campaign(item) for item in result]
    return items, result.last_evaluated_key


def all_campaigns(tenant_id: str) -> list[Campaign]:
    return [_campaign(i) for i in CampaignItem.query(tenant_pk(tenant_id), CampaignItem.sk.startswith("CAMPAIGN#"))]


def delete(tenant_id: str, campaign: Campaign) -> None:
    try:
        CampaignItem(*campaign_key(tenant_id, campaign.id)).delete(condition=CampaignItem.status == campaign.status)
    except Exception as error:
        if getattr(error, "cause_response_code", None) == "ConditionalCheckFailedException":
            raise StaleCampaign(campaign.id) from error
        raise


def due_scheduled(before: str) -> list[tuple[str, str]]:
    """(tenant, campaign) of scheduled campaigns whose send_at ≤ ``before`` (RFC 3339, so text order is time order)."""
    return [
        (item.gsi1sk.split("#")[1], item.gsi1sk.split("#")[2])
        for item in CampaignItem.gsi1.query(SCHEDULED_INDEX, CampaignItem.gsi1sk <= f"{before}#~")
    ]


def change_status(
    tenant_id: str, campaign_id: str, allowed: Iterable[str], status: str, reason: str | None = None, **fields: Any
) -> bool:
    """Move to ``status`` if the campaign is in one of ``allowed``; False if it was not."""
    allowed = list(allowed)
    condition = CampaignItem.status.is_in(*allowed)
    actions: list[Action] = [CampaignItem.status.set(status)]
    actions.append(CampaignItem.status_reason.set(reason) if reason else CampaignItem.status_reason.remove())
    if status != SCHEDULED:
        actions += [CampaignItem.gsi1pk.remove(), CampaignItem.gsi1sk.remove()]
    for name, value in fields.items():
        actions.append(getattr(CampaignItem, name).set(value))
    try:
        CampaignItem(*campaign_key(tenant_id, campaign_id)).update(actions=actions, condition=condition)
        return True
    except UpdateError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise


def finish_if_complete(tenant_id: str, campaign_id: str, shards: int, status: str, finished_at: str) -> bool:
    """sending → ``status`` once every shard's audience is built and every batch is done."""
    condition = (
        (CampaignItem.status == "sending")
        & (CampaignItem.shards_done == shards)
        & (CampaignItem.batches_done >= CampaignItem.batches_total)
    )
    try:
        CampaignItem(*campaign_key(tenant_id, campaign_id)).update(
            actions=[CampaignItem.status.set(status), CampaignItem.finished_at.set(finished_at)], condition=condition
        )
        return True
    except UpdateError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise


# --- the audience snapshot -----------------------------------------------------------------------------


def acquire_build(tenant_id: str, campaign_id: str, shard: int, build_id: str, now_ms: int, lease_ms: int) -> str:
    """``acquired`` (build it), ``built`` (it exists: queue what is left) or ``busy`` (another delivery holds it)."""
    item = AudienceBuildItem(_own_pk(tenant_id, campaign_id), f"A#{shard:02d}")
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
    tenant_id: str, campaign_id: str, shard: int, build_id: str, batches: list[list[tuple[str, str]]]
) -> None:
    """Write this build's batches of a shard, replacing whatever an earlier, crashed build left."""
    pk = _own_pk(tenant_id, campaign_id)
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
                    pk, f"B#{shard:02d}#{n:05d}", recipients=json.dumps(recipients), state="queued", build_id=build_id
                )
            )


def finish_build(tenant_id: str, campaign_id: str, shard: int, build_id: str, batches: int, audience: int) -> bool:
    """Mark the shard built and add its batches and audience to the campaign, once. False if another build won."""
    try:
        with TransactWrite(connection=connection()) as transaction:
            transaction.update(
                AudienceBuildItem(_own_pk(tenant_id, campaign_id), f"A#{shard:02d}"),
                actions=[AudienceBuildItem.state.set("built"), AudienceBuildItem.batches.set(batches)],
                condition=(AudienceBuildItem.state == "building") & (AudienceBuildItem.build_id == build_id),
            )
            transaction.update(
                CampaignItem(*campaign_key(tenant_id, campaign_id)),
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


def _batch(item: BatchItem) -> Batch:
    return Batch(key=item.sk, recipients=[tuple(r) for r in json.loads(item.recipients)], done=item.state == "done")


def batches_of(tenant_id: str, campaign_id: str, shard: int | None = None) -> list[Batch]:
    prefix = "B#" if shard is None else f"B#{shard:02d}#"
    return [
        _batch(i)
        for i in BatchItem.query(_own_pk(tenant_id, campaign_id), BatchItem.sk.startswith(prefix), consistent_read=True)
    ]


# --- send records --------------------------------------------------------------------------------------


def claim(
    tenant_id: str,
    campaign_id: str,
    claim_id: str,
    claims: list[Claim],
    ledgers: list[Ledger],
    at: str,
    require_sending: bool = True,
) -> list[Claim]:
    """Write the records of ``claims`` in one transaction, conditioned on each recipient being unclaimed (or
    released) and on the campaign still sending; the frequency ledgers of those about to be mailed move too.

    Returns the claims that landed; recipients someone else holds are dropped (and the rest retried).
    Raises NotSending if the campaign is paused or cancelled.
    """
    pk = _own_pk(tenant_id, campaign_id)
    pending, ledgers_by_contact = list(claims), {ledger.contact_id: ledger for ledger in ledgers}
    while pending:
        counts: dict[str, int] = {}
        operations: list[tuple[str, Any]] = []
        try:
            with TransactWrite(connection=connection()) as transaction:
                for c in pending:
                    record = SendItem(
                        pk,
                        f"S#{c.contact_id}",
                        contact_id=c.contact_id,
                        email=c.email,
                        state=c.state,
                        claim=claim_id,
                        at=at,
                        reason=c.reason,
                    )
                    transaction.save(record, condition=SendItem.pk.does_not_exist() | (SendItem.state == RELEASED))
                    operations.append(("record", c))
                    counter = "claimed" if c.state == CLAIMED else c.state
                    counts[counter] = counts.get(counter, 0) + 1
                for c in pending:
                    ledger = ledgers_by_contact.get(c.contact_id)
                    if ledger is None or c.state != CLAIMED:
                        continue
                    item = LedgerItem(_ledger_pk(tenant_id, c.contact_id), f"ML#{c.contact_id}")
                    condition = (
                        LedgerItem.version == ledger.version if ledger.version else LedgerItem.pk.does_not_exist()
                    )
                    item.sent_at, item.version = json.dumps(ledger.sent_at), ledger.version + 1
                    transaction.save(item, condition=condition)
                    operations.append(("ledger", c))
                transaction.update(
                    CampaignItem(*campaign_key(tenant_id, campaign_id)),
                    actions=[getattr(CampaignItem, name).add(n) for name, n in counts.items()],
                    condition=(CampaignItem.status == "sending") if require_sending else None,
                )
            return pending
        except TransactWriteError as error:
            reasons = cancellation_reasons(error)
            if not reasons or ("ConditionalCheckFailed" not in reasons and "TransactionConflict" not in reasons):
                raise
            if reasons[-1] == "ConditionalCheckFailed":
                raise NotSending(campaign_id) from error
            taken = {operations[i][1].contact_id for i, r in enumerate(reasons[:-1]) if r == "ConditionalCheckFailed"}
            if any(operations[i][0] == "ledger" for i, r in enumerate(reasons[:-1]) if r == "ConditionalCheckFailed"):
                raise LedgerMoved(campaign_id) from error
            pending = [c for c in pending if c.contact_id not in taken]
    return []


def settle(
    tenant_id: str, campaign_id: str, claim_id: str, outcomes: list[Outcome], at: str, batch_key: str | None
) -> None:
    """Record what SES said for each claimed recipient, add the counts, and (``batch_key``) mark the batch done,
    all in one transaction. A batch already marked done by a duplicate delivery is not counted twice."""
    pk = _own_pk(tenant_id, campaign_id)
    while True:
        counts: dict[str, int] = {}
        try:
            with TransactWrite(connection=connection()) as transaction:
                for outcome in outcomes:  # whole records (puts cost moto a fifth of what updates do)
                    record = SendItem(
                        pk,
                        f"S#{outcome.contact_id}",
                        contact_id=outcome.contact_id,
                        email=outcome.email,
                        state=outcome.state,
                        claim=claim_id,
                        at=at,
                        message_id=outcome.message_id,
                        reason=outcome.reason,
                    )
                    transaction.save(record, condition=(SendItem.claim == claim_id) & (SendItem.state == CLAIMED))
                    counts[outcome.state] = counts.get(outcome.state, 0) + 1
                if batch_key:
                    transaction.update(
                        BatchItem(pk, batch_key),
                        actions=[BatchItem.state.set("done")],
                        condition=BatchItem.state != "done",
                    )
                    counts["batches_done"] = 1
                if counts:
                    transaction.update(
                        CampaignItem(*campaign_key(tenant_id, campaign_id)),
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


def send_records(
    tenant_id: str, campaign_id: str, state: str | None, limit: int, start: dict[str, Any] | None
) -> tuple[list[RecipientRecord], dict[str, Any] | None]:
    result = SendItem.query(
        _own_pk(tenant_id, campaign_id),
        SendItem.sk.startswith("S#"),
        filter_condition=(SendItem.state == state) if state else None,
        limit=limit,
        last_evaluated_key=start,
    )
    records = [_record(item) for item in result]
    return records, result.last_evaluated_key


def all_send_records(tenant_id: str, campaign_id: str) -> list[RecipientRecord]:
    items = SendItem.query(_own_pk(tenant_id, campaign_id), SendItem.sk.startswith("S#"), consistent_read=True)
    return [_record(item) for item in items]


def _record(item: SendItem) -> RecipientRecord:
    return RecipientRecord(item.contact_id, item.email, item.state, item.at, item.reason, item.message_id)


def mark_feedback(tenant_id: str, campaign_id: str, contact_id: str, state: str) -> bool:
    """sent → bounced / complained, and count it, once (a redelivered notification changes nothing)."""
    try:
        with TransactWrite(connection=connection()) as transaction:
            transaction.update(
                SendItem(_own_pk(tenant_id, campaign_id), f"S#{contact_id}"),
                actions=[SendItem.state.set(state)],
                condition=SendItem.state == "sent",
            )
            transaction.update(
                CampaignItem(*campaign_key(tenant_id, campaign_id)), actions=[getattr(CampaignItem, state).add(1)]
            )
        return True
    except TransactWriteError as error:
        if "ConditionalCheckFailed" in cancellation_reasons(error):
            return False
        raise


# --- what the worker reads about a batch's recipients ---------------------------------------------------


def _suppression_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}#SUPPRESSIONS"


def _ledger_pk(tenant_id: str, contact_id: str) -> str:
    ordinal = ordinal_of(contact_id)
    assert ordinal is not None  # recipients are contacts
    return shard_pk(tenant_id, shard_of(ordinal))


def recipient_facts(tenant_id: str, recipients: list[tuple[str, str]]) -> RecipientFacts:
    """Contacts, suppressions and frequency ledgers of a batch's recipients (two BatchGetItem calls for 49)."""
    keys: list[tuple[str, str]] = []
    for contact_id, email in recipients:
        ordinal = ordinal_of(contact_id)
        if ordinal is None:
            continue
        keys.append((shard_pk(tenant_id, shard_of(ordinal)), f"C#{contact_id}"))
        keys.append((_suppression_pk(tenant_id), f"E#{email}"))
        keys.append((shard_pk(tenant_id, shard_of(ordinal)), f"ML#{contact_id}"))
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


# --- suppressions --------------------------------------------------------------------------------------


def _suppression(item: SuppressionItem) -> Suppression:
    return Suppression(item.email, item.reason, item.created_at, item.campaign_id)


def suppress(tenant_id: str, suppression: Suppression) -> bool:
    """Add an address (first reason wins); False if it was already suppressed."""
    try:
        SuppressionItem(
            _suppression_pk(tenant_id),
            f"E#{suppression.email}",
            email=suppression.email,
            reason=suppression.reason,
            created_at=suppression.created_at,
            campaign_id=suppression.campaign_id,
        ).save(condition=SuppressionItem.pk.does_not_exist())
        return True
    except PutError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise


def get_suppression(tenant_id: str, email: str) -> Suppression | None:
    try:
        return _suppression(SuppressionItem.get(_suppression_pk(tenant_id), f"E#{email}", consistent_read=True))
    except DoesNotExist:
        return None


def unsuppress(tenant_id: str, email: str) -> None:
    SuppressionItem(_suppression_pk(tenant_id), f"E#{email}").delete()


def suppressions_page(
    tenant_id: str, limit: int, start: dict[str, Any] | None
) -> tuple[list[Suppression], dict[str, Any] | None]:
    result = SuppressionItem.query(
        _suppression_pk(tenant_id), SuppressionItem.sk.startswith("E#"), limit=limit, last_evaluated_key=start
    )
    items = [_suppression(i) for i in result]
    return items, result.last_evaluated_key


# --- the tenant's send rate ----------------------------------------------------------------------------


def reserve_send_slots(tenant_id: str, count: int, per_second: int, now_ms: int, max_ahead_ms: int) -> int | None:
    """Reserve ``count`` send slots at ``per_second`` across every worker of the tenant; return when the
    first slot starts (epoch ms; slot *i* is at ``start + i * 1000 / per_second``), or None, reserving
    nothing, when the first free slot is more than ``max_ahead_ms`` away.

    The tenant's lane is one number, the end of the last reservation; it only grows. One write when the
    lane is idle (it ends before now: start now), two when it is busy (then append to it atomically with
    ADD, unless it already reaches past ``max_ahead_ms``). Nothing is read first and nothing is retried.
    """
    span = (count * 1000) // per_second
    lane = SendRateItem(tenant_pk(tenant_id), "#SENDRATE")
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
        lane.update(actions=[SendRateItem.next_ms.add(span)], condition=SendRateItem.next_ms <= now_ms + max_ahead_ms)
    except UpdateError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        return None
    return int(lane.next_ms) - span
