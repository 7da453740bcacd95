"""Suppressed addresses of a tenant: bounced, complained, unsubscribed, or added by hand.

| item | pk | sk |
| --- | --- | --- |
| suppressed address | ``TENANT#{t}#SUPPRESSIONS`` | ``E#{email}`` |
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib.domain.campaigns import (
    Suppression,
)
from chalicelib.storage.mapping import Mapper
from chalicelib.storage.table import MainTableModel


class SuppressionItem(MainTableModel):
    email = UnicodeAttribute()
    reason = UnicodeAttribute()  # bounce / complaint / manual / unsubscribed
    created_at = UnicodeAttribute()
    campaign_id = UnicodeAttribute(null=True)


def suppressions_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}#SUPPRESSIONS"


# --- suppressions --------------------------------------------------------------------------------------


SUPPRESSION_MAPPER = Mapper(Suppression, SuppressionItem)
"""Suppression fields are SuppressionItem attributes of the same names (storage/mapping.py)."""
_suppression = SUPPRESSION_MAPPER.entity


class SuppressionTable:
    """The SuppressionList port on DynamoDB, bound to one tenant."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def suppress(self, suppression: Suppression) -> bool:
        """Add an address (first reason wins); False if it was already suppressed."""
        try:
            SuppressionItem(
                suppressions_pk(self.tenant_id),
                f"E#{suppression.email}",
                **SUPPRESSION_MAPPER.attributes(suppression),
            ).save(condition=SuppressionItem.pk.does_not_exist())
            return True
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise

    def get_suppression(self, email: str) -> Suppression | None:
        try:
            return _suppression(
                SuppressionItem.get(suppressions_pk(self.tenant_id), f"E#{email}", consistent_read=True)
            )
        except DoesNotExist:
            return None

    def unsuppress(self, email: str) -> None:
        SuppressionItem(suppressions_pk(self.tenant_id), f"E#{email}").delete()

    def suppressions_page(
        self, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[Suppression], dict[str, Any] | None]:
        result = SuppressionItem.query(
            suppressions_pk(self.tenant_id), SuppressionItem.sk.startswith("E#"), limit=limit, last_evaluated_key=start
        )
        items = [_suppression(i) for i in result]
        return items, result.last_evaluated_key
