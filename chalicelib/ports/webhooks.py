"""One tenant's webhook endpoints and their delivery logs (storage/webhooks.py), and the HTTP POST that
delivers to them (storage/webhook_transport.py)."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.domain.webhooks import Attempt, DeliveryRecord, Webhook

Position = dict[str, Any] | None


class StaleWebhook(Exception):
    """The endpoint changed since it was read."""


class WebhookRepository(Protocol):
    def create(self, webhook: Webhook) -> None: ...

    def get(self, webhook_id: str) -> Webhook | None: ...

    def all_webhooks(self) -> list[Webhook]:
        """Every endpoint of the tenant (a handful: domain/webhooks.py MAX_ENDPOINTS)."""

    def save(self, before: Webhook, after: Webhook) -> None:
        """Replace it whole unless it changed since ``before`` was read (StaleWebhook)."""

    def delete(self, webhook: Webhook) -> None:
        """With its delivery log."""

    def log_delivery(self, webhook_id: str, record: DeliveryRecord) -> None:
        """Write the delivery's line of the log (one per delivery id: a later attempt replaces it)."""

    def deliveries(self, webhook_id: str, limit: int, start: Position) -> tuple[list[DeliveryRecord], Position]:
        """The log, newest first."""


class WebhookTransport(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        """POST once: no redirect followed, only allowed addresses reached, a short timeout."""
