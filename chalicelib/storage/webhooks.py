"""Webhook endpoints and their delivery logs.

| item | pk | sk |
| --- | --- | --- |
| endpoint | ``TENANT#{t}`` | ``WEBHOOK#{id}`` |
| a delivery's line of the log | ``TENANT#{t}#WEBHOOK#{id}`` | ``D#{event created_at}#{delivery id}`` |

The signing secret is stored sealed with the service's signing secret (domain/tokens.py): a copy of the
table alone does not let anyone sign as us. Log lines expire after ``LOG_KEPT_SECONDS``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib.config import get_config
from chalicelib.domain import tokens
from chalicelib.domain.webhooks import DeliveryRecord, Webhook
from chalicelib.ports.webhooks import StaleWebhook
from chalicelib.storage.table import MainTableModel
from chalicelib.storage.tenants import tenant_pk

LOG_KEPT_SECONDS = 30 * 86_400
_SECRET_PURPOSE = "webhook-secret"


class WebhookItem(MainTableModel):
    webhook_id = UnicodeAttribute()
    url = UnicodeAttribute()
    events = UnicodeAttribute()  # JSON list
    description = UnicodeAttribute(null=True)
    sealed_secret = UnicodeAttribute()
    key_id = UnicodeAttribute()
    status = UnicodeAttribute()
    disabled_reason = UnicodeAttribute(null=True)
    failures_in_a_row = NumberAttribute()
    version = NumberAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()


class DeliveryItem(MainTableModel):
    delivery_id = UnicodeAttribute()
    event_id = UnicodeAttribute()
    type = UnicodeAttribute()
    created_at = UnicodeAttribute()
    status = UnicodeAttribute()
    attempts = NumberAttribute()
    at = UnicodeAttribute()
    response_status = NumberAttribute(null=True)
    latency_ms = NumberAttribute(null=True)
    error = UnicodeAttribute(null=True)
    expires_at = NumberAttribute()


def _log_pk(tenant_id: str, webhook_id: str) -> str:
    return f"TENANT#{tenant_id}#WEBHOOK#{webhook_id}"


def _item(tenant_id: str, webhook: Webhook) -> WebhookItem:
    sealed = tokens.seal({"s": webhook.secret}, purpose=_SECRET_PURPOSE, secret=get_config().secret)
    return WebhookItem(
        tenant_pk(tenant_id),
        f"WEBHOOK#{webhook.id}",
        webhook_id=webhook.id,
        url=webhook.url,
        events=json.dumps(webhook.events),
        description=webhook.description,
        sealed_secret=sealed,
        key_id=webhook.key_id,
        status=webhook.status,
        disabled_reason=webhook.disabled_reason,
        failures_in_a_row=webhook.failures_in_a_row,
        version=webhook.version,
        created_at=webhook.created_at,
        updated_at=webhook.updated_at,
    )


def _webhook(item: WebhookItem) -> Webhook:
    opened = tokens.unseal(item.sealed_secret, purpose=_SECRET_PURPOSE, secret=get_config().secret)
    if opened is None:
        raise ValueError(f"webhook {item.webhook_id}: its secret was sealed under another signing secret")
    return Webhook(
        id=item.webhook_id,
        url=item.url,
        events=json.loads(item.events),
        description=item.description,
        secret=str(opened["s"]),
        key_id=item.key_id,
        status=item.status,
        version=int(item.version),
        created_at=item.created_at,
        updated_at=item.updated_at,
        disabled_reason=item.disabled_reason,
        failures_in_a_row=int(item.failures_in_a_row),
    )


def _record(item: DeliveryItem) -> DeliveryRecord:
    return DeliveryRecord(
        id=item.delivery_id,
        event_id=item.event_id,
        type=item.type,
        created_at=item.created_at,
        status=item.status,
        attempts=int(item.attempts),
        at=item.at,
        response_status=None if item.response_status is None else int(item.response_status),
        latency_ms=None if item.latency_ms is None else int(item.latency_ms),
        error=item.error,
    )


class WebhookTable:
    """The WebhookRepository port on DynamoDB, bound to one tenant."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def create(self, webhook: Webhook) -> None:
        _item(self.tenant_id, webhook).save(condition=WebhookItem.pk.does_not_exist())

    def get(self, webhook_id: str) -> Webhook | None:
        try:
            return _webhook(WebhookItem.get(tenant_pk(self.tenant_id), f"WEBHOOK#{webhook_id}", consistent_read=True))
        except DoesNotExist:
            return None

    def all_webhooks(self) -> list[Webhook]:
        found = WebhookItem.query(
            tenant_pk(self.tenant_id), WebhookItem.sk.startswith("WEBHOOK#"), consistent_read=True
        )
        return [_webhook(item) for item in found]

    def save(self, before: Webhook, after: Webhook) -> None:
        try:
            _item(self.tenant_id, after).save(condition=WebhookItem.version == before.version)
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                raise StaleWebhook(before.id) from error
            raise

    def delete(self, webhook: Webhook) -> None:
        WebhookItem(tenant_pk(self.tenant_id), f"WEBHOOK#{webhook.id}").delete()
        with DeliveryItem.batch_write() as batch:
            for item in DeliveryItem.query(_log_pk(self.tenant_id, webhook.id)):
                batch.delete(item)

    def log_delivery(self, webhook_id: str, record: DeliveryRecord) -> None:
        DeliveryItem(
            _log_pk(self.tenant_id, webhook_id),
            f"D#{record.created_at}#{record.id}",
            delivery_id=record.id,
            event_id=record.event_id,
            type=record.type,
            created_at=record.created_at,
            status=record.status,
            attempts=record.attempts,
            at=record.at,
            response_status=record.response_status,
            latency_ms=record.latency_ms,
            error=record.error,
            expires_at=int(time.time()) + LOG_KEPT_SECONDS,
        ).save()

    def deliveries(self, webhook_id: str, limit: int, start: dict[str, Any] | None) -> tuple[list[DeliveryRecord], Any]:
        result = DeliveryItem.query(
            _log_pk(self.tenant_id, webhook_id), scan_index_forward=False, limit=limit, last_evaluated_key=start
        )
        return [_record(item) for item in result], result.last_evaluated_key
