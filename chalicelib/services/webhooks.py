"""Outbound webhooks: endpoints admins register, the events the service emits to them, and their delivery.

An event (``emit``) becomes one message per endpoint that hears it on the webhooks queue; the queue's worker
(``deliver``) signs and POSTs it, logs the attempt, and after a failure queues it again with a growing delay,
until the last attempt sends it to the dead-letter queue and counts against the endpoint (domain/webhooks.py
says when one is switched off). Deliveries are at least once: an event emitted twice (a redelivered queue
message upstream) has the same event id, and a delivery the same ``Segments-Webhook-Id`` on every attempt.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, replace
from typing import Any

from chalicelib.config import get_config
from chalicelib.domain import webhooks as rules
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.engagements import Reward
from chalicelib.domain.errors import LimitExceeded, NotFound, changed_meanwhile
from chalicelib.domain.ids import new_id
from chalicelib.domain.validation import validate
from chalicelib.domain.webhooks import DeliveryRecord, Webhook
from chalicelib.logs import logger
from chalicelib.ports.webhooks import StaleWebhook
from chalicelib.resources import WEBHOOKS_DEAD_LETTER_QUEUE, WEBHOOKS_QUEUE
from chalicelib.services import dependents
from chalicelib.services.context import TenantContext
from chalicelib.services.paging import page

CREATE_WEBHOOK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url", "events"],
    "properties": rules.WEBHOOK_FIELDS,
}
PATCH_WEBHOOK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        **rules.WEBHOOK_FIELDS,
        "enabled": {"type": "boolean", "description": "false switches it off; true on again (failures forgotten)."},
    },
}
WEBHOOK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "url", "events", "status"],
    "properties": {
        "id": {"type": "string"},
        "url": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string"}},
        "description": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": [rules.ENABLED, rules.DISABLED]},
        "disabled_reason": {"type": ["string", "null"]},
        "failures_in_a_row": {"type": "integer"},
        "key_id": {"type": "string", "description": "Sent as Segments-Key-Id with every delivery."},
        "secret": {"type": "string", "description": "Only in the answer to POST /webhooks: keep it."},
        "version": {"type": "integer"},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
    },
}
DELIVERY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "event_id", "type", "status", "attempts", "at"],
    "properties": {
        "id": {"type": "string", "description": "Segments-Webhook-Id: the same on every attempt."},
        "event_id": {"type": "string"},
        "type": {"type": "string"},
        "created_at": {"type": "string"},
        "status": {"type": "string", "enum": [rules.DELIVERED, rules.RETRYING, rules.FAILED]},
        "attempts": {"type": "integer"},
        "at": {"type": "string"},
        "response_status": {"type": ["integer", "null"]},
        "latency_ms": {"type": ["integer", "null"]},
        "error": {"type": ["string", "null"]},
    },
}


@dataclass(frozen=True)
class Event:
    """Something webhooks report: ``id`` is stable (the same when the same thing is reported again)."""

    id: str
    type: str
    at: str
    data: dict[str, Any]


def _local() -> bool:
    return get_config().stage == "local"


def webhook_view(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "url": webhook.url,
        "events": webhook.events,
        "description": webhook.description,
        "status": webhook.status,
        "disabled_reason": webhook.disabled_reason,
        "failures_in_a_row": webhook.failures_in_a_row,
        "key_id": webhook.key_id,
        "version": webhook.version,
        "created_at": webhook.created_at,
        "updated_at": webhook.updated_at,
    }


def delivery_view(record: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "event_id": record.event_id,
        "type": record.type,
        "created_at": record.created_at,
        "status": record.status,
        "attempts": record.attempts,
        "at": record.at,
        "response_status": record.response_status,
        "latency_ms": record.latency_ms,
        "error": record.error,
    }


def _require(ctx: TenantContext, webhook_id: str) -> Webhook:
    webhook = ctx.ports.webhooks.get(webhook_id)
    if webhook is None:
        raise NotFound(f"Webhook {webhook_id} does not exist.", {"field": "id"})
    return webhook


def create_webhook(ctx: TenantContext, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, CREATE_WEBHOOK_SCHEMA)
    url = rules.check_url(body["url"], local=_local())
    if len(ctx.ports.webhooks.all_webhooks()) >= rules.MAX_ENDPOINTS:
        raise LimitExceeded("url", f"A tenant has at most {rules.MAX_ENDPOINTS} webhooks.", limit=rules.MAX_ENDPOINTS)
    now = to_rfc3339(clock())
    webhook = Webhook(
        id=new_id("webhook"),
        url=url,
        events=list(body["events"]),
        description=body.get("description"),
        secret="whsec_" + secrets.token_urlsafe(32),
        key_id="wsk_" + secrets.token_hex(6),
        status=rules.ENABLED,
        version=1,
        created_at=now,
        updated_at=now,
    )
    ctx.ports.webhooks.create(webhook)
    logger.info("webhook created", extra={"webhook_id": webhook.id, "events": webhook.events})
    return {**webhook_view(webhook), "secret": webhook.secret}


def list_webhooks(ctx: TenantContext) -> dict[str, Any]:
    webhooks = sorted(ctx.ports.webhooks.all_webhooks(), key=lambda w: w.created_at)
    return {"items": [webhook_view(w) for w in webhooks]}


def get_webhook(ctx: TenantContext, webhook_id: str) -> dict[str, Any]:
    return webhook_view(_require(ctx, webhook_id))


def update_webhook(ctx: TenantContext, webhook_id: str, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, PATCH_WEBHOOK_SCHEMA)
    before = _require(ctx, webhook_id)
    fields: dict[str, Any] = {name: body[name] for name in ("events", "description") if name in body}
    if "url" in body:
        fields["url"] = rules.check_url(body["url"], local=_local())
    if body.get("enabled") is True:
        fields.update(status=rules.ENABLED, disabled_reason=None, failures_in_a_row=0)
    elif body.get("enabled") is False:
        fields.update(status=rules.DISABLED, disabled_reason="switched off by an admin")
    after = replace(before, **fields, version=before.version + 1, updated_at=to_rfc3339(clock()))
    try:
        ctx.ports.webhooks.save(before, after)
    except StaleWebhook:
        raise changed_meanwhile(f"Webhook {webhook_id}") from None
    return webhook_view(after)


def delete_webhook(ctx: TenantContext, webhook_id: str, confirm: bool = False) -> None:
    """Triggers that post to it lose that action (one left without actions is disabled, saying why)."""
    webhook = _require(ctx, webhook_id)
    dependents.review("webhook", ctx, webhook.id, f"webhook {webhook.url}", confirm)
    ctx.ports.webhooks.delete(webhook)
    dependents.release("webhook", ctx, webhook.id, f"webhook {webhook.url} ({webhook.id}) was deleted")


def deliveries(ctx: TenantContext, webhook_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    _require(ctx, webhook_id)
    scope = f"webhook-deliveries:{ctx.tenant_id}:{webhook_id}"
    return page(scope, cursor, lambda start: ctx.ports.webhooks.deliveries(webhook_id, limit, start), delivery_view)


def send_test(ctx: TenantContext, webhook_id: str, clock: Clock = system_clock) -> dict[str, Any]:
    """Deliver a ``webhook.test`` event now, once (switched-off endpoints too), and say how it went."""
    webhook = _require(ctx, webhook_id)
    now = to_rfc3339(clock())
    event = Event(new_id("webhook_event"), rules.TEST_EVENT, now, {"webhook_id": webhook.id, "test": True})
    message = _message(ctx.tenant_id, webhook.id, event)
    record = _attempt(ctx, webhook, message, clock, retry=False)
    return delivery_view(record)


# --- emitting and delivering ---------------------------------------------------------------------------


def _message(tenant_id: str, webhook_id: str, event: Event) -> dict[str, Any]:
    body = {"id": event.id, "type": event.type, "created_at": event.at, "tenant_id": tenant_id, "data": event.data}
    return {
        "kind": "webhook.delivery",
        "tenant_id": tenant_id,
        "webhook_id": webhook_id,
        "delivery_id": rules.delivery_id(webhook_id, event.id),
        "attempt": 1,
        "event": body,
    }


def emit(ctx: TenantContext, events: list[Event], only: str | None = None) -> int:
    """Queue a delivery of each event to every enabled endpoint that hears it (or to the endpoint ``only``,
    whatever it listens to: a trigger's webhook action); how many were queued."""
    if not events:
        return 0
    endpoints = [w for w in ctx.webhooks if w.status == rules.ENABLED]
    messages = [
        _message(ctx.tenant_id, webhook.id, event)
        for event in events
        for webhook in endpoints
        if (webhook.id == only if only else rules.hears(webhook.events, event.type))
    ]
    return ctx.ports.queues.send(WEBHOOKS_QUEUE, messages) if messages else 0


def deliver(ctx: TenantContext, message: dict[str, Any], clock: Clock = system_clock) -> str | None:
    """One attempt of one queued delivery; its status, or None when its endpoint is gone or switched off."""
    webhook = ctx.ports.webhooks.get(message["webhook_id"])
    if webhook is None or webhook.status != rules.ENABLED:
        logger.info("webhook delivery dropped: endpoint gone or off", extra={"webhook_id": message["webhook_id"]})
        return None
    return _attempt(ctx, webhook, message, clock, retry=True).status


def _attempt(
    ctx: TenantContext, webhook: Webhook, message: dict[str, Any], clock: Clock, *, retry: bool
) -> DeliveryRecord:
    body = json.dumps(message["event"], separators=(",", ":"), sort_keys=True).encode()
    now = clock()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Segments-Webhooks/1",
        "Segments-Webhook-Id": message["delivery_id"],
        "Segments-Key-Id": webhook.key_id,
        "Segments-Signature": rules.signature(webhook.secret, int(now.timestamp()), body),
    }
    attempt = ctx.ports.webhook_transport.post(webhook.url, body, headers)
    number = int(message["attempt"])
    if attempt.delivered:
        status = rules.DELIVERED
    elif retry and number < rules.MAX_ATTEMPTS:
        status = rules.RETRYING
        again = {**message, "attempt": number + 1}
        ctx.ports.queues.send(WEBHOOKS_QUEUE, [again], delay_seconds=rules.retry_delay(number))
    else:
        status = rules.FAILED
        if retry:
            ctx.ports.queues.send(WEBHOOKS_DEAD_LETTER_QUEUE, [message])
    event = message["event"]
    record = DeliveryRecord(
        id=message["delivery_id"],
        event_id=event["id"],
        type=event["type"],
        created_at=event["created_at"],
        status=status,
        attempts=number,
        at=to_rfc3339(now),
        response_status=attempt.status,
        latency_ms=attempt.latency_ms,
        error=None if attempt.delivered else attempt.problem,
    )
    ctx.ports.webhooks.log_delivery(webhook.id, record)
    logger.info(
        "webhook attempt",
        extra={"webhook_id": webhook.id, "delivery_id": record.id, "status": status, "attempt": number},
    )
    if retry and status != rules.RETRYING:
        _count_outcome(ctx, webhook, attempt.delivered, record.error, clock)
    return record


def _count_outcome(ctx: TenantContext, webhook: Webhook, delivered: bool, problem: str | None, clock: Clock) -> None:
    """A delivery ended: its endpoint's dead deliveries in a row, and switched off when they reach the bar."""
    for _ in range(3):
        failures, reason = rules.after_outcome(webhook, delivered, problem)
        if failures == webhook.failures_in_a_row and reason is None:
            return
        status = rules.DISABLED if reason else webhook.status
        after = replace(
            webhook,
            failures_in_a_row=failures,
            status=status,
            disabled_reason=reason or webhook.disabled_reason,
            version=webhook.version + 1,
            updated_at=to_rfc3339(clock()),
        )
        try:
            ctx.ports.webhooks.save(webhook, after)
        except StaleWebhook:
            fresh = ctx.ports.webhooks.get(webhook.id)
            if fresh is None:
                return
            webhook = fresh
            continue
        if reason:
            logger.warning("webhook switched off", extra={"webhook_id": webhook.id, "reason": reason})
        return


# --- what the service reports --------------------------------------------------------------------------


def membership_changed(ctx: TenantContext, message: dict[str, Any]) -> None:
    """``segment.entered`` / ``segment.exited`` (the membership event's id is the event's)."""
    data = {"segment_id": message["segment_id"], "contact_id": message["contact_id"], "cause": message["cause"]}
    emit(ctx, [Event(message["id"], message["type"], message["at"], data)])


def campaign_sent(ctx: TenantContext, campaign_id: str, name: str, at: str) -> None:
    emit(ctx, [Event(f"campaign.sent:{campaign_id}", "campaign.sent", at, {"campaign_id": campaign_id, "name": name})])


def mail_events(ctx: TenantContext, events: list[tuple[str, str, str, dict[str, Any]]]) -> None:
    """``email.delivered`` / ``email.opened`` / ``email.clicked``: (event id, type, at, data) each."""
    emit(ctx, [Event(*event) for event in events])


def unsubscribed(ctx: TenantContext, email: str, campaign_id: str | None, at: str) -> None:
    seed = f"{email}|{campaign_id or ''}"
    event_id = "unsubscribed:" + hashlib.sha256(seed.encode()).hexdigest()[:32]
    emit(ctx, [Event(event_id, "contact.unsubscribed", at, {"email": email, "campaign_id": campaign_id})])


def trigger_fired(
    ctx: TenantContext, trigger_id: str, contact_id: str, key: str, at: str, only: str | None = None
) -> None:
    """``trigger.fired`` once per firing (its key); ``only``: a webhook action's endpoint."""
    data = {"trigger_id": trigger_id, "contact_id": contact_id}
    emit(ctx, [Event(f"trigger.fired:{key}", "trigger.fired", at, data)], only=only)


def journey_step(
    ctx: TenantContext, journey_id: str, step: str | None, contact_id: str, key: str, at: str, only: str
) -> None:
    """``journey.step`` once per step a contact goes through (its key), to a webhook step's endpoint."""
    data = {"journey_id": journey_id, "step": step, "contact_id": contact_id}
    emit(ctx, [Event(f"journey.step:{key}", "journey.step", at, data)], only=only)


def rewards_granted(ctx: TenantContext, rewards: list[Reward]) -> None:
    emit(ctx, [Event(f"reward.granted:{r.id}", "reward.granted", r.at, {"contact_id": r.contact_id,
                     "reward": {"id": r.id, "amount": r.amount, "currency": r.currency, "note": r.note,
                                "source": r.source}}) for r in rewards])  # fmt: skip
