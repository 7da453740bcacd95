"""The local runtime's mailbox: what the local SES accepted, per tenant (never on a deployed stage)."""

from __future__ import annotations

from typing import Any, Protocol


class LocalMailbox(Protocol):
    def newest(self, tenant_id: str, limit: int, before: int | None) -> list[dict[str, Any]]:
        """The tenant's messages, newest first, numbered below ``before``: id, number, sent_at, from, to,
        subject and tags, without bodies."""

    def one(self, tenant_id: str, message_id: str) -> dict[str, Any] | None:
        """One message of the tenant, with its raw MIME text (``raw``)."""
