"""Ports: what the services need from the outside world, as typed Protocols.

Each repository port is bound to one tenant when it is made (chalicelib/composition.py), so a
service holding one cannot read or write another tenant's data. storage/ implements them on
DynamoDB and SQS; tests/support/fakes.py implements them in memory, and
tests/integration/test_port_contracts.py runs the same cases against both.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.ports.campaigns import CampaignRepository, SendLedger
from chalicelib.ports.catalog import CatalogRepository
from chalicelib.ports.contacts import ContactRepository
from chalicelib.ports.engagements import EngagementRepository
from chalicelib.ports.jobs import JobRepository
from chalicelib.ports.journeys import JourneyRepository
from chalicelib.ports.mailer import Mailer
from chalicelib.ports.membership import MembershipLedger
from chalicelib.ports.outbox import ChangeOutbox
from chalicelib.ports.queues import MessageQueues
from chalicelib.ports.segments import SegmentRepository
from chalicelib.ports.shards import SnapshotStore
from chalicelib.ports.suppressions import SuppressionList
from chalicelib.ports.tenants import TenantAccount
from chalicelib.ports.trail import AuditTrail
from chalicelib.ports.triggers import TriggerRepository
from chalicelib.ports.webhooks import WebhookRepository, WebhookTransport


@dataclass(frozen=True)
class TenantPorts:
    """Every port a service may use, bound to one tenant (the queues, the outbox and the mailer, whose messages
    name their tenant, are shared)."""

    tenant_id: str
    segments: SegmentRepository
    contacts: ContactRepository
    snapshots: SnapshotStore
    membership: MembershipLedger
    engagements: EngagementRepository
    account: TenantAccount
    suppressions: SuppressionList
    trail: AuditTrail
    triggers: TriggerRepository
    jobs: JobRepository
    catalog: CatalogRepository
    campaigns: CampaignRepository
    sends: SendLedger
    queues: MessageQueues
    outbox: ChangeOutbox
    mailer: Mailer
    webhooks: WebhookRepository
    webhook_transport: WebhookTransport
    journeys: JourneyRepository
