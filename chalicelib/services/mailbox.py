"""The Mailbox: every email the local runtime sent for a tenant, like a local mail catcher. Local stage only:
on a deployed stage the routes answer 404, as if they did not exist."""

from __future__ import annotations

from typing import Any

from chalicelib.config import get_config
from chalicelib.domain.errors import NotFound
from chalicelib.domain.mailbox import read_message
from chalicelib.ports.mailbox import LocalMailbox
from chalicelib.services.paging import page

LOCAL_STAGE = "local"


def _require_local() -> None:
    if get_config().stage != LOCAL_STAGE:
        raise NotFound("There is no mailbox on a deployed stage: mail goes out through SES.")


def list_mail(mailbox: LocalMailbox, tenant_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    _require_local()

    def fetch(position: dict[str, Any] | None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        found = mailbox.newest(tenant_id, limit + 1, (position or {}).get("before"))
        shown = found[:limit]
        return shown, ({"before": shown[-1]["number"]} if len(found) > limit else None)

    return page(f"mail:{tenant_id}", cursor, fetch)


def get_mail(mailbox: LocalMailbox, tenant_id: str, message_id: str) -> dict[str, Any]:
    _require_local()
    found = mailbox.one(tenant_id, message_id)
    if found is None:
        raise NotFound(f"No message {message_id} in this tenant's mailbox.", {"field": "id"})
    raw = found.pop("raw")
    return {**found, **read_message(raw)}
