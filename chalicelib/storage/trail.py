"""Request rate windows per key, and the audit log of admin and operator writes.

| item | pk | sk |
| --- | --- | --- |
| requests of a key in one second | ``TENANT#{t}#RATE#{key}`` | ``{epoch second}`` (kept 2 minutes) |
| audit entry | ``TENANT#{t}#AUDIT`` | ``{at}#{request id}`` (kept 400 days) |
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import UpdateError

from chalicelib.storage.table import MainTableModel

RATE_WINDOW_KEPT_SECONDS = 120


class RateWindowItem(MainTableModel):
    n = NumberAttribute(default=0)
    expires_at = NumberAttribute()


class AuditItem(MainTableModel):
    entry = UnicodeAttribute()  # JSON: key, action, target, request id, status (ids only, no personal data)
    expires_at = NumberAttribute()


class AuditTrailTable:
    """The AuditTrail port on DynamoDB, bound to one tenant: request rate windows and the audit log."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def take_request(self, key: str, second: int, limit: int) -> bool:
        """Count a request in ``key``'s window for ``second``; False (and nothing counted) when it is full.
        One conditional write: no read first, so two requests at once cannot both take the last place."""
        item = RateWindowItem(f"TENANT#{self.tenant_id}#RATE#{key}", str(second))
        try:
            item.update(
                actions=[RateWindowItem.n.add(1), RateWindowItem.expires_at.set(second + RATE_WINDOW_KEPT_SECONDS)],
                condition=RateWindowItem.n.does_not_exist() | (RateWindowItem.n < limit),
            )
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def record(self, at: str, request_id: str, entry: dict[str, Any], expires_at: int) -> None:
        AuditItem(
            f"TENANT#{self.tenant_id}#AUDIT", f"{at}#{request_id}", entry=json.dumps(entry), expires_at=expires_at
        ).save()

    def audit_page(
        self, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Newest first."""
        result = AuditItem.query(
            f"TENANT#{self.tenant_id}#AUDIT", scan_index_forward=False, limit=limit, last_evaluated_key=start
        )
        return [json.loads(item.entry) for item in result], result.last_evaluated_key
