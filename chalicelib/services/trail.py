"""Limits and a trail: how many requests a key may make each second, and the audit log of every admin
and operator write.

- **Rate.** Each tenant key (and each contact's portal token) may make ``requests_per_second`` requests in
  a calendar second (tenant setting, 50 by default); past that, 429 ``rate_limited`` with ``Retry-After``.
  One conditional write per request (storage/trail.py). Deployed, API Gateway's stage throttling is the
  wall in front of it (infra/template.json).
- **Audit.** Every successful write by an admin key or the operator is recorded for the tenant it
  touched: key id and name, action (method and route), target (path ids, and the id a create made),
  time, request id. Nothing else: no bodies, no personal data. Kept 400 days; ``GET /audit-log`` (admin).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from chalicelib.domain import settings as settings_rules
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.errors import RateLimited
from chalicelib.logs import logger
from chalicelib.services.context import TenantContext
from chalicelib.services.paging import page
from chalicelib.services.principal import Principal

AUDIT_KEPT_DAYS = 400


def admit(context_for: Callable[[str], TenantContext], principal: Principal, clock: Clock = system_clock) -> None:
    """Count the request against its key's rate; raise RateLimited when this second is used up."""
    if principal.tenant_id is None:
        return  # the operator and anonymous routes (health, unsubscribe pages) are not tenant traffic
    key = f"portal:{principal.contact_id}" if principal.kind == "portal" else principal.key_id or "unknown"
    limit = int((principal.settings or settings_rules.DEFAULTS)["requests_per_second"])
    now = clock()
    if not context_for(principal.tenant_id).ports.trail.take_request(key, int(now.timestamp()), limit):
        raise RateLimited(
            f"This key may make {limit} requests a second (settings.requests_per_second); try again in a second.",
            retry_after=1,
            details={"limit": limit},
        )


def audit(
    context_for: Callable[[str], TenantContext],
    principal: Principal,
    action: str,
    path_ids: dict[str, str],
    result: Any,
    request_id: str,
    clock: Clock = system_clock,
) -> None:
    """Record a successful write. A failure to record is logged, never turned into a failed request: the
    write it describes has already happened."""
    created = result.get("id") if isinstance(result, dict) and isinstance(result.get("id"), str) else None
    tenant_id = principal.tenant_id or path_ids.get("tenant_id") or (created if action == "POST /tenants" else None)
    if tenant_id is None:
        return
    now = clock()
    at = to_rfc3339(now)
    entry = {
        "at": at,
        "request_id": request_id,
        "action": action,
        "target": {**path_ids, **({"created": created} if created and action.startswith("POST") else {})},
        "key": {"id": principal.key_id, "name": principal.key_name}
        if principal.kind == "tenant"
        else {"id": "operator", "name": "operator"},
    }
    try:
        expires_at = int((now + timedelta(days=AUDIT_KEPT_DAYS)).timestamp())
        context_for(tenant_id).ports.trail.record(at, request_id, entry, expires_at)
    except Exception:
        logger.exception("audit entry not recorded", extra={"action": action, "request_id": request_id})


def audit_log(ctx: TenantContext, limit: int, cursor: str | None) -> dict[str, Any]:
    return page(f"audit:{ctx.tenant_id}", cursor, lambda start: ctx.ports.trail.audit_page(limit, start))


AUDIT_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["at", "request_id", "action", "target", "key"],
    "properties": {
        "at": {"type": "string", "format": "date-time"},
        "request_id": {"type": "string"},
        "action": {"type": "string", "examples": ["DELETE /segments/{segment_id}"]},
        "target": {"type": "object", "additionalProperties": {"type": "string"}},
        "key": {
            "type": "object",
            "properties": {"id": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]}},
        },
    },
}
