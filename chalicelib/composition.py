"""Composition: the one place that binds ports to adapters.

Routes (through ``Call.context``) and queue and schedule handlers ask here for a tenant's context;
services receive it and never choose an adapter themselves. Unit tests build the same context on
in-memory fakes (tests/support/fakes.py).
"""

from __future__ import annotations

from chalicelib.config import get_config
from chalicelib.ports import TenantPorts
from chalicelib.ports.mailbox import LocalMailbox
from chalicelib.ports.tenants import TenantDirectory
from chalicelib.services import (
    campaigns,
    changes,
    dependents,
    engagements,
    evaluation,
    groups,
    imports,
    jobs,
    journeys,
    membership,
    segments,
    shards,
    tags,
    triggers,
)
from chalicelib.services.context import TenantContext
from chalicelib.services.principal import Principal
from chalicelib.services.tenants import cached_settings
from chalicelib.storage import campaigns as campaign_storage
from chalicelib.storage import journeys as journey_storage
from chalicelib.storage import membership as membership_storage
from chalicelib.storage import segments as segment_storage
from chalicelib.storage import triggers as trigger_storage
from chalicelib.storage.campaigns import CampaignTable
from chalicelib.storage.catalog import CatalogTable
from chalicelib.storage.contacts import ContactTable
from chalicelib.storage.engagements import EngagementTable
from chalicelib.storage.jobs import JobTable
from chalicelib.storage.journeys import JourneyTable
from chalicelib.storage.local_mailbox import MotoServerMailbox
from chalicelib.storage.mailer import SesMailer
from chalicelib.storage.membership import MembershipTable
from chalicelib.storage.outbox import OutboxTable
from chalicelib.storage.queues import SqsQueues
from chalicelib.storage.segments import SegmentTable
from chalicelib.storage.sends import SendTable
from chalicelib.storage.snapshots import SnapshotBucket
from chalicelib.storage.suppressions import SuppressionTable
from chalicelib.storage.tenants import TenantAccountTable, TenantDirectoryTable
from chalicelib.storage.trail import AuditTrailTable
from chalicelib.storage.triggers import TriggerTable
from chalicelib.storage.webhook_transport import HttpWebhookTransport
from chalicelib.storage.webhooks import WebhookTable

_QUEUES = SqsQueues()
_MAILER = SesMailer()
_OUTBOX = OutboxTable()
_DIRECTORY = TenantDirectoryTable()
_MAILBOX = MotoServerMailbox()
_WEBHOOK_TRANSPORT = HttpWebhookTransport(local=lambda: get_config().stage == "local")


def tenant_directory() -> TenantDirectory:
    """Every tenant: for authentication and the operator's routes only (ports/tenants.py)."""
    return _DIRECTORY


def local_mailbox() -> LocalMailbox:
    """What the local runtime sent (the console's Mailbox; services/mailbox.py refuses it when deployed)."""
    return _MAILBOX


def tenant_ports(tenant_id: str) -> TenantPorts:
    return TenantPorts(
        tenant_id=tenant_id,
        segments=SegmentTable(tenant_id),
        contacts=ContactTable(tenant_id),
        snapshots=SnapshotBucket(tenant_id),
        membership=MembershipTable(tenant_id),
        engagements=EngagementTable(tenant_id),
        account=TenantAccountTable(tenant_id),
        suppressions=SuppressionTable(tenant_id),
        trail=AuditTrailTable(tenant_id),
        triggers=TriggerTable(tenant_id),
        jobs=JobTable(tenant_id),
        catalog=CatalogTable(tenant_id),
        campaigns=CampaignTable(tenant_id),
        sends=SendTable(tenant_id),
        queues=_QUEUES,
        outbox=_OUTBOX,
        mailer=_MAILER,
        webhooks=WebhookTable(tenant_id),
        webhook_transport=_WEBHOOK_TRANSPORT,
        journeys=JourneyTable(tenant_id),
    )


def tenant_context(tenant_id: str, principal: Principal | None = None) -> TenantContext:
    """The context of a request (``principal``: the caller, whose key carried the settings) or of a batch of
    messages for ``tenant_id`` (settings from the worker's short-lived cache)."""
    if principal is not None and principal.settings:
        return TenantContext(tenant_ports(tenant_id), principal.settings, principal)
    return TenantContext(tenant_ports(tenant_id), lambda: cached_settings(_DIRECTORY, tenant_id), principal)


class TenantContexts:
    """One context per tenant for the length of a batch of messages (a batch may mix tenants) or of a
    request (``principal``: the caller, whose own tenant's context carries it and its key's settings)."""

    def __init__(self, principal: Principal | None = None) -> None:
        self._principal = principal
        self._made: dict[str, TenantContext] = {}

    def of(self, tenant_id: str) -> TenantContext:
        if tenant_id not in self._made:
            caller = self._principal if self._principal and self._principal.tenant_id == tenant_id else None
            self._made[tenant_id] = tenant_context(tenant_id, caller)
        return self._made[tenant_id]


def relay_outboxes() -> int:
    """Queue what requests and updates wrote to an outbox but did not queue (every tenant's): change messages,
    then segment transition events."""
    return changes.relay_pending(_OUTBOX, _QUEUES) + membership.relay_pending(
        membership_storage.left_unqueued, TenantContexts().of
    )


def due_triggers(before: str) -> list[tuple[str, str]]:
    """(tenant, trigger) of the schedule triggers due at ``before`` (one sparse index across tenants)."""
    return trigger_storage.due_scheduled(before)


def due_journeys(before: str) -> list[tuple[str, str, str]]:
    """(tenant, journey, contact) of the waits over at ``before`` (one sparse index across tenants)."""
    return journey_storage.due_positions(before)


def scheduled_journeys(before: str) -> list[tuple[str, str]]:
    """(tenant, journey) of the running schedule journeys due at ``before`` (one sparse index across tenants)."""
    return journey_storage.due_scheduled(before)


def due_campaigns(before: str) -> list[tuple[str, str]]:
    """(tenant, campaign) of the scheduled campaigns due at ``before`` (one sparse index across tenants)."""
    return campaign_storage.due_scheduled(before)


def time_dependent_segments() -> dict[str, set[str]]:
    """Tenant → its segments that time alone changes (one sparse index, across tenants: the hourly refresh)."""
    due: dict[str, set[str]] = {}
    for tenant_id, segment_id in segment_storage.time_dependent_segments():
        due.setdefault(tenant_id, set()).add(segment_id)
    return due


jobs.register_kinds(evaluation.JOB_KINDS | groups.JOB_KINDS | imports.JOB_KINDS | shards.JOB_KINDS | tags.JOB_KINDS)
dependents.register(
    segments.DEPENDENTS + campaigns.DEPENDENTS + engagements.DEPENDENTS + triggers.DEPENDENTS + journeys.DEPENDENTS
)
