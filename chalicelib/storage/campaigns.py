"""Campaigns: their content and status.

| item | pk | sk |
| --- | --- | --- |
| campaign | ``TENANT#{t}`` | ``CAMPAIGN#{id}`` |

Scheduled campaigns are also in the sparse gsi1 partition ``CAMPAIGNS#SCHEDULED``
(sort key ``{send_at}#{tenant}#{campaign}``), which the minute schedule reads. What a
sending campaign writes per shard and per recipient is in storage/sends.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.update import Action

from chalicelib.domain.campaigns import (
    CONTENT,
    COUNTERS,
    SCHEDULED,
    Campaign,
    StaleCampaign,
)
from chalicelib.storage.mapping import Mapper
from chalicelib.storage.table import Gsi1, MainTableModel
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
    tracking = BooleanAttribute(null=True)
    variants = UnicodeAttribute(null=True)  # JSON list
    ab_test = UnicodeAttribute(null=True)  # JSON
    winner = UnicodeAttribute(null=True)
    winner_at = UnicodeAttribute(null=True)
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
    delivered = NumberAttribute(null=True)
    opened = NumberAttribute(null=True)
    clicked = NumberAttribute(null=True)
    opens = NumberAttribute(null=True)
    clicks = NumberAttribute(null=True)
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi1 = Gsi1()


def campaign_key(tenant_id: str, campaign_id: str) -> tuple[str, str]:
    return tenant_pk(tenant_id), f"CAMPAIGN#{campaign_id}"


def campaign_own_pk(tenant_id: str, campaign_id: str) -> str:
    return f"TENANT#{tenant_id}#CAMPAIGN#{campaign_id}"


CAMPAIGN_MAPPER = Mapper(Campaign, CampaignItem, renamed={"id": "campaign_id"}, spread={"counters": COUNTERS})
"""Campaign fields are CampaignItem attributes of the same names, each counter one of its own
(storage/mapping.py)."""
_campaign = CAMPAIGN_MAPPER.entity


def _scheduled_keys(tenant_id: str, campaign: Campaign) -> dict[str, str | None]:
    if campaign.status == SCHEDULED and campaign.send_at:
        return {"gsi1pk": SCHEDULED_INDEX, "gsi1sk": f"{campaign.send_at}#{tenant_id}#{campaign.id}"}
    return {"gsi1pk": None, "gsi1sk": None}


def _content_fields(tenant_id: str, campaign: Campaign) -> dict[str, Any]:
    """What creating or editing a campaign writes: its content, never the progress sending moves."""
    return {**CAMPAIGN_MAPPER.attributes(campaign, only={"id", *CONTENT}), **_scheduled_keys(tenant_id, campaign)}


def due_scheduled(before: str) -> list[tuple[str, str]]:
    """(tenant, campaign) of scheduled campaigns whose send_at ≤ ``before`` (RFC 3339, so text order is time order)."""
    return [
        (item.gsi1sk.split("#")[1], item.gsi1sk.split("#")[2])
        for item in CampaignItem.gsi1.query(SCHEDULED_INDEX, CampaignItem.gsi1sk <= f"{before}#~")
    ]


class CampaignTable:
    """The CampaignRepository port on DynamoDB, bound to one tenant."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def create(self, campaign: Campaign) -> None:
        CampaignItem(*campaign_key(self.tenant_id, campaign.id), **_content_fields(self.tenant_id, campaign)).save(
            condition=CampaignItem.pk.does_not_exist()
        )

    def save_content(self, before: Campaign, after: Campaign) -> None:
        """Save an edit (content, targets, schedule) if nobody changed the campaign since ``before``."""
        item = CampaignItem(*campaign_key(self.tenant_id, before.id))
        actions = []
        for name, value in _content_fields(self.tenant_id, after).items():
            attribute = getattr(CampaignItem, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        try:
            item.update(
                actions=actions,
                condition=(CampaignItem.version == before.version) & (CampaignItem.status == before.status),
            )
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                raise StaleCampaign(before.id) from error
            raise

    def get(self, campaign_id: str) -> Campaign | None:
        try:
            return _campaign(CampaignItem.get(*campaign_key(self.tenant_id, campaign_id), consistent_read=True))
        except DoesNotExist:
            return None

    def page(self, limit: int, start: dict[str, Any] | None) -> tuple[list[Campaign], dict[str, Any] | None]:
        result = CampaignItem.query(
            tenant_pk(self.tenant_id), CampaignItem.sk.startswith("CAMPAIGN#"), limit=limit, last_evaluated_key=start
        )
        items = [_campaign(item) for item in result]
        return items, result.last_evaluated_key

    def all_campaigns(self) -> list[Campaign]:
        return [
            _campaign(i) for i in CampaignItem.query(tenant_pk(self.tenant_id), CampaignItem.sk.startswith("CAMPAIGN#"))
        ]

    def delete(self, campaign: Campaign) -> None:
        try:
            CampaignItem(*campaign_key(self.tenant_id, campaign.id)).delete(
                condition=CampaignItem.status == campaign.status
            )
        except Exception as error:
            if getattr(error, "cause_response_code", None) == "ConditionalCheckFailedException":
                raise StaleCampaign(campaign.id) from error
            raise

    def change_status(
        self, campaign_id: str, allowed: Iterable[str], status: str, reason: str | None = None, **fields: Any
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
            CampaignItem(*campaign_key(self.tenant_id, campaign_id)).update(actions=actions, condition=condition)
            return True
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise

    def record_winner(self, campaign_id: str, variant: str, at: str) -> bool:
        try:
            CampaignItem(*campaign_key(self.tenant_id, campaign_id)).update(
                actions=[CampaignItem.winner.set(variant), CampaignItem.winner_at.set(at)],
                condition=CampaignItem.pk.exists() & CampaignItem.winner.does_not_exist(),
            )
            return True
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise

    def finish_if_complete(
        self, campaign_id: str, shards: int, status: str, finished_at: str, needs_winner: bool = False
    ) -> bool:
        """sending → ``status`` once every shard's audience is built, every batch is done and, with
        ``needs_winner``, the winner is recorded."""
        condition = (
            (CampaignItem.status == "sending")
            & (CampaignItem.shards_done == shards)
            & (CampaignItem.batches_done >= CampaignItem.batches_total)
        )
        if needs_winner:
            condition &= CampaignItem.winner.exists()
        try:
            CampaignItem(*campaign_key(self.tenant_id, campaign_id)).update(
                actions=[CampaignItem.status.set(status), CampaignItem.finished_at.set(finished_at)],
                condition=condition,
            )
            return True
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
