"""Announcements and challenges (one item type, two kinds) and each contact's rewards ledger.

| item | pk | sk |
| --- | --- | --- |
| announcement | ``TENANT#{t}`` | ``ANNOUNCEMENT#{id}`` |
| challenge | ``TENANT#{t}`` | ``CHALLENGE#{id}`` |
| reward of a contact | ``TENANT#{t}#SHARD#{nn}`` | ``RW#{contact_id}#{reward_id}`` |

A tenant has tens of announcements and challenges, not millions: the portal
reads them all (one query per kind) and keeps those whose window is open and
whose segments hold the contact. A reward's id comes from its cause
(domain/engagements.reward_id), and it is written only if absent, so a cause
processed twice leaves one line.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError

from chalicelib.domain.contacts import shard_of
from chalicelib.domain.engagements import Engagement, Reward, StaleEngagement
from chalicelib.storage.mapping import Mapper
from chalicelib.storage.table import MainTableModel, shard_pk
from chalicelib.storage.tenants import tenant_pk


class EngagementItem(MainTableModel):
    engagement_id = UnicodeAttribute()
    kind = UnicodeAttribute()  # announcement / challenge
    name = UnicodeAttribute()
    body = UnicodeAttribute(null=True)
    segments = UnicodeAttribute()  # JSON list
    starts_at = UnicodeAttribute()
    ends_at = UnicodeAttribute()
    goal = UnicodeAttribute(null=True)  # JSON (challenges)
    reward = UnicodeAttribute(null=True)  # JSON (challenges)
    status = UnicodeAttribute()
    status_reason = UnicodeAttribute(null=True)
    version = NumberAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()


class RewardItem(MainTableModel):
    reward_id = UnicodeAttribute()
    contact_id = UnicodeAttribute()
    amount = NumberAttribute()
    currency = UnicodeAttribute()
    note = UnicodeAttribute(null=True)
    source = UnicodeAttribute()  # JSON {"type": "challenge"|"trigger", "id": …}
    at = UnicodeAttribute()


def _key(tenant_id: str, kind: str, engagement_id: str) -> tuple[str, str]:
    return tenant_pk(tenant_id), f"{kind.upper()}#{engagement_id}"


ENGAGEMENT_MAPPER = Mapper(Engagement, EngagementItem, renamed={"id": "engagement_id"})
"""Engagement fields are EngagementItem attributes of the same names (storage/mapping.py)."""


def _item(tenant_id: str, engagement: Engagement) -> EngagementItem:
    return EngagementItem(*_key(tenant_id, engagement.kind, engagement.id), **ENGAGEMENT_MAPPER.attributes(engagement))


def _reward_key(tenant_id: str, contact_id: str, ordinal: int, reward_id: str) -> tuple[str, str]:
    return shard_pk(tenant_id, shard_of(ordinal)), f"RW#{contact_id}#{reward_id}"


REWARD_MAPPER = Mapper(Reward, RewardItem, renamed={"id": "reward_id"})
"""Reward fields are RewardItem attributes of the same names (storage/mapping.py)."""
_reward = REWARD_MAPPER.entity


def _reward_item(tenant_id: str, ordinal: int, reward: Reward) -> RewardItem:
    return RewardItem(
        *_reward_key(tenant_id, reward.contact_id, ordinal, reward.id), **REWARD_MAPPER.attributes(reward)
    )


class EngagementTable:
    """The EngagementRepository port on DynamoDB, bound to one tenant: announcements, challenges and rewards."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def create(self, engagement: Engagement) -> None:
        _item(self.tenant_id, engagement).save(condition=EngagementItem.pk.does_not_exist())

    def save(self, before: Engagement, after: Engagement) -> None:
        """Replace it whole if nobody changed it since ``before`` was read."""
        try:
            _item(self.tenant_id, after).save(condition=EngagementItem.version == before.version)
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                raise StaleEngagement(before.id) from error
            raise

    def get(self, kind: str, engagement_id: str) -> Engagement | None:
        try:
            return ENGAGEMENT_MAPPER.entity(
                EngagementItem.get(*_key(self.tenant_id, kind, engagement_id), consistent_read=True)
            )
        except DoesNotExist:
            return None

    def page(
        self, kind: str, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[Engagement], dict[str, Any] | None]:
        result = EngagementItem.query(
            tenant_pk(self.tenant_id),
            EngagementItem.sk.startswith(f"{kind.upper()}#"),
            limit=limit,
            last_evaluated_key=start,
        )
        return [ENGAGEMENT_MAPPER.entity(item) for item in result], result.last_evaluated_key

    def all_of(self, kind: str) -> list[Engagement]:
        return [
            ENGAGEMENT_MAPPER.entity(item)
            for item in EngagementItem.query(
                tenant_pk(self.tenant_id), EngagementItem.sk.startswith(f"{kind.upper()}#")
            )
        ]

    def delete(self, engagement: Engagement) -> None:
        try:
            EngagementItem(*_key(self.tenant_id, engagement.kind, engagement.id)).delete(
                condition=EngagementItem.version == engagement.version
            )
        except DeleteError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                raise StaleEngagement(engagement.id) from error
            raise

    def add_reward(self, ordinal: int, reward: Reward) -> bool:
        """Write the ledger line unless one with its id exists; True if this call wrote it."""
        try:
            _reward_item(self.tenant_id, ordinal, reward).save(condition=RewardItem.pk.does_not_exist())
            return True
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise

    def put_rewards(self, lines: list[tuple[int, Reward]]) -> None:
        """Write many ledger lines (ordinal, reward) in batches of 25: a line written again under its id
        replaces itself, so a cause still has one line."""
        with RewardItem.batch_write() as batch:
            for ordinal, reward in lines:
                batch.save(_reward_item(self.tenant_id, ordinal, reward))

    def rewards_page(
        self, contact_id: str, ordinal: int, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[Reward], dict[str, Any] | None]:
        result = RewardItem.query(
            shard_pk(self.tenant_id, shard_of(ordinal)),
            RewardItem.sk.startswith(f"RW#{contact_id}#"),
            limit=limit,
            last_evaluated_key=start,
        )
        return [_reward(item) for item in result], result.last_evaluated_key

    def all_rewards(self, contact_id: str, ordinal: int) -> list[Reward]:
        pk = shard_pk(self.tenant_id, shard_of(ordinal))
        return [_reward(item) for item in RewardItem.query(pk, RewardItem.sk.startswith(f"RW#{contact_id}#"))]
