"""In-memory adapters of every port (chalicelib/ports), for unit tests that need no moto.

Each one passes the same contract tests as its DynamoDB/SQS adapter
(tests/integration/test_port_contracts.py), so a service tested on these behaves the same on AWS.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, replace
from dataclasses import fields as dataclass_fields
from typing import Any

import numpy as np

from chalicelib.domain import settings as settings_rules
from chalicelib.domain.ab_tests import VARIANT_COUNTERS
from chalicelib.domain.campaigns import (
    CLAIMED,
    CONTENT,
    DELIVERED,
    RELEASED,
    Batch,
    Campaign,
    Claim,
    Ledger,
    LedgerMoved,
    NotSending,
    Ordinals,
    Outcome,
    RecipientFacts,
    RecipientRecord,
    StaleCampaign,
    Suppression,
    send_span_ms,
)
from chalicelib.domain.catalog import AlreadyExists, Group, Tag
from chalicelib.domain.clock import system_clock, to_rfc3339
from chalicelib.domain.contacts import SHARDS, Contact, StaleContact, TakenIdentifier, shard_of
from chalicelib.domain.engagements import Engagement, Reward, StaleEngagement
from chalicelib.domain.jobs import Job
from chalicelib.domain.journeys import (
    ACTIVE,
    DEFINITION,
    JOURNEY_COUNTERS,
    RUNNING,
    STEP_COUNTERS,
    WAITING,
    Journey,
    StaleJourney,
)
from chalicelib.domain.journeys import Position as JourneyPosition
from chalicelib.domain.mail_events import TOTALS, RecipientEvent
from chalicelib.domain.membership import MembershipCommit, Stamp, Superseded
from chalicelib.domain.planner import EVERYONE
from chalicelib.domain.segments import EVALUATION_FIELDS, Segment, SizePoint, StaleSegment
from chalicelib.domain.tenants import ApiKey, KeyOwner, StaleWrite, Tenant
from chalicelib.domain.triggers import RUN_COUNTERS, Run, StaleTrigger, Trigger
from chalicelib.domain.webhooks import Attempt, DeliveryRecord, Webhook
from chalicelib.ports import TenantPorts
from chalicelib.ports.contacts import ContactChange, DirtyMark, EventAppend
from chalicelib.ports.mailer import Mail, MailError
from chalicelib.ports.segments import ANY_JOB, Position
from chalicelib.ports.shards import Manifest
from chalicelib.ports.tenants import TenantDirectory
from chalicelib.ports.webhooks import StaleWebhook
from chalicelib.services.context import TenantContext
from chalicelib.services.principal import Principal


def _page(items: list[Any], key: Any, limit: int, start: Position) -> tuple[list[Any], Position]:
    """``limit`` items after the one whose key ``start`` names; a position when more may follow."""
    after = (start or {}).get("after")
    rest = [item for item in items if after is None or key(item) > after]
    chosen = rest[:limit]
    return chosen, ({"after": key(chosen[-1])} if len(rest) > limit else None)


class InMemorySegments:
    """SegmentRepository in memory."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._segments: dict[str, Segment] = {}
        self._versions: dict[str, list[dict[str, Any]]] = {}
        self._members: dict[tuple[str, str], dict[int, set[int]]] = {}
        self._sizes: dict[str, dict[str, SizePoint]] = {}
        self._counted: set[tuple[str, str]] = set()

    def _save_version(self, segment: Segment) -> None:
        saved = {
            "version": segment.version,
            "name": segment.name,
            "description": segment.description,
            "criteria": segment.criteria,
            "saved_at": segment.updated_at,
        }
        self._versions.setdefault(segment.id, []).append(saved)

    def create(self, segment: Segment) -> None:
        if segment.id in self._segments:
            raise ValueError(f"segment {segment.id} exists")
        self._save_version(segment)
        self._segments[segment.id] = segment

    def save(self, before: Segment, after: Segment) -> None:
        current = self._segments.get(before.id)
        if current is None or current.updated_at != before.updated_at:
            raise StaleSegment(before.id)
        if after.version != before.version:
            self._save_version(after)
        edited = {f.name: getattr(after, f.name) for f in dataclass_fields(Segment) if f.name not in EVALUATION_FIELDS}
        self._segments[before.id] = replace(current, **edited)

    def get(self, segment_id: str) -> Segment | None:
        return self._segments.get(segment_id)

    def all_segments(self) -> list[Segment]:
        return sorted(self._segments.values(), key=lambda s: s.id)

    def page(self, limit: int, start: Position) -> tuple[list[Segment], Position]:
        return _page(self.all_segments(), lambda s: s.id, limit, start)

    def versions(self, segment_id: str, limit: int, start: Position) -> tuple[list[dict[str, Any]], Position]:
        newest_first = sorted(self._versions.get(segment_id, []), key=lambda v: -v["version"])
        return _page(newest_first, lambda v: -v["version"], limit, start)

    def count_transition(
        self, segment_id: str, day: str, entered: bool, event_id: str, members: int | None, kept_until: int
    ) -> bool:
        if (segment_id, event_id) in self._counted:
            return False
        self._counted.add((segment_id, event_id))
        point = self._sizes.setdefault(segment_id, {}).get(day, SizePoint(day))
        self._sizes[segment_id][day] = replace(
            point,
            members=point.members if members is None else members,
            entered=point.entered + entered,
            exited=point.exited + (not entered),
        )
        return True

    def record_members(self, segment_id: str, day: str, members: int, kept_until: int) -> None:
        point = self._sizes.setdefault(segment_id, {}).get(day, SizePoint(day))
        self._sizes[segment_id][day] = replace(point, members=members)

    def size_points(self, segment_id: str) -> list[SizePoint]:
        return [point for _, point in sorted(self._sizes.get(segment_id, {}).items())]

    def delete(self, segment_id: str) -> None:
        self._segments.pop(segment_id, None)
        self._versions.pop(segment_id, None)
        self._sizes.pop(segment_id, None)
        self._counted = {counted for counted in self._counted if counted[0] != segment_id}
        for key in [k for k in self._members if k[0] == segment_id]:
            del self._members[key]

    def update_fields(self, segment_id: str, *, expected_job_id: Any = ANY_JOB, **fields: Any) -> bool:
        current = self._segments.get(segment_id)
        if current is None or (expected_job_id is not ANY_JOB and current.job_id != expected_job_id):
            return False
        self._segments[segment_id] = replace(current, **fields)
        return True

    def write_shard_members(self, segment_id: str, generation: str, shard: int, ordinals: Iterable[int]) -> None:
        self._members.setdefault((segment_id, generation), {})[shard] = {int(o) for o in ordinals}

    def publish(self, segment_id: str, job_id: str, fields: dict[str, Any]) -> str | None:
        current = self._segments.get(segment_id)
        if current is None or current.job_id != job_id:
            raise StaleSegment(segment_id)
        if current.generation == job_id:
            return current.retired_generation
        count = self.count_members(segment_id, job_id)
        flipped = replace(
            current, **fields, member_count=count, generation=job_id, retired_generation=current.generation
        )
        self._segments[segment_id] = flipped
        return current.generation

    def count_members(self, segment_id: str, generation: str) -> int:
        return len(self.members(segment_id, generation))

    def delete_generation(self, segment_id: str, generation: str) -> None:
        self._members.pop((segment_id, generation), None)

    def members(self, segment_id: str, generation: str) -> set[int]:
        return set().union(*self._members.get((segment_id, generation), {}).values())

    def page_of_members(
        self, segment_id: str, generation: str, limit: int, position: Position
    ) -> tuple[list[int], Position]:
        ordered = sorted(self.members(segment_id, generation), key=lambda o: (o % SHARDS, o))
        after = tuple(position["after"]) if position else None
        rest = [o for o in ordered if after is None or (o % SHARDS, o) > after]
        chosen = rest[:limit]
        return chosen, ({"after": [chosen[-1] % SHARDS, chosen[-1]]} if len(rest) > limit else None)

    def shard_members(self, segment_id: str, generation: str, shard: int) -> set[int]:
        return set(self._members.get((segment_id, generation), {}).get(shard, set()))


class InMemoryOutbox:
    """ChangeOutbox in memory: the groups of messages written and not yet forgotten, by their first id."""

    def __init__(self) -> None:
        self.kept: dict[str, list[dict[str, Any]]] = {}

    def put(self, messages: Sequence[Mapping[str, Any]]) -> None:
        if messages:
            self.kept[messages[0]["id"]] = [dict(m) for m in messages]

    def forget(self, written: Iterable[Sequence[Mapping[str, Any]]]) -> None:
        for messages in written:
            if messages:
                self.kept.pop(messages[0]["id"], None)

    def pending(self, before: str, limit: int = 100) -> list[list[dict[str, Any]]]:
        return sorted((g for g in self.kept.values() if g[0]["at"] < before), key=lambda g: g[0]["at"])[:limit]


def _guards(contact: Contact | None) -> dict[str, tuple[str, str]]:
    if contact is None:
        return {}
    return {
        name: (name, value) for name, value in (("external_id", contact.external_id), ("email", contact.email)) if value
    }


class InMemoryContacts:
    """ContactRepository in memory (``put`` seeds a contact directly, as a test's fixture)."""

    BATCH = 10
    """Changes per transaction batch: small, so services meet several batches in unit tests."""

    def __init__(self, tenant_id: str, outbox: InMemoryOutbox | None = None) -> None:
        self.tenant_id = tenant_id
        self.outbox = outbox or InMemoryOutbox()
        self._contacts: dict[str, Contact] = {}
        self._events: dict[str, dict[str, dict[str, Any]]] = {}
        self._guards: dict[tuple[str, str], str] = {}
        self._ordinals = 0
        self._marks: dict[int, dict[str, tuple[set[str], str]]] = {}

    def _mark_dirty(self, contacts: Iterable[Contact]) -> None:
        """One mark per shard, as the DynamoDB adapter leaves them: never changed, forgotten only by name."""
        at, tokens = to_rfc3339(system_clock()), dict[int, str]()
        for contact in contacts:
            shard = shard_of(contact.ordinal)
            token = tokens.setdefault(shard, secrets.token_hex(8))
            self._marks.setdefault(shard, {}).setdefault(token, (set(), at))[0].add(contact.id)

    def dirty(self, shard: int, limit: int | None = None) -> dict[str, DirtyMark]:
        found: dict[str, DirtyMark] = {}
        for token, (contact_ids, at) in sorted(self._marks.get(shard, {}).items()):
            for contact_id in contact_ids:
                marks, oldest, latest = found.get(contact_id, (frozenset(), at, at))
                found[contact_id] = DirtyMark(marks | {token}, min(oldest, at), max(latest, at))
            if limit is not None and len(found) >= limit:
                break
        return found

    def forget_dirty(self, shard: int, seen: Mapping[str, DirtyMark]) -> None:
        marks = self._marks.get(shard, {})
        for dirty in seen.values():
            for token in dirty.marks:
                marks.pop(token, None)

    def read_contacts(
        self, contact_ids: Iterable[str], with_events: bool = True
    ) -> tuple[list[Contact], dict[str, list[dict[str, Any]]]]:
        contacts = [self._contacts[i] for i in dict.fromkeys(contact_ids) if i in self._contacts]
        return contacts, ({c.id: self._events_of(c.id) for c in contacts} if with_events else {})

    def put(self, contact: Contact, events: Iterable[dict[str, Any]] = ()) -> None:
        """Store (or replace) a contact and add events (the same id overwrites itself)."""
        events = list(events)
        self._contacts[contact.id] = contact
        self._guards.update({key: contact.id for key in _guards(contact).values()})
        self._ordinals = max(self._ordinals, contact.ordinal)
        self._mark_dirty([contact])
        self._put_events(contact, events)

    def put_events_many(self, appends: Sequence[EventAppend]) -> None:
        self._mark_dirty(contact for contact, _, _ in appends)
        for contact, events, _ in appends:
            self._put_events(contact, events)

    def _put_events(self, contact: Contact, events: Sequence[Mapping[str, Any]]) -> None:
        own = self._events.setdefault(contact.id, {})
        for event in events:
            own[event["id"]] = {
                "id": event["id"],
                "type": event["type"],
                "at": event["at"],
                "amount": event.get("amount"),
                "properties": dict(event.get("properties") or {}),
            }

    def _events_of(self, contact_id: str) -> list[dict[str, Any]]:
        return [event for _, event in sorted(self._events.get(contact_id, {}).items())]

    def allocate_ordinals(self, count: int) -> int:
        self._ordinals += count
        return self._ordinals - count + 1

    def write(self, changes: Sequence[ContactChange], messages: Sequence[Mapping[str, Any]] = ()) -> None:
        contacts, guards = dict(self._contacts), dict(self._guards)
        stale = taken = None
        for before, after in changes:
            changed = after or before
            assert changed is not None
            current = contacts.get(changed.id)
            if (before is None) != (current is None) or (before and current and before.version != current.version):
                stale = changed.id
            old, new = _guards(before), _guards(after)
            for name, key in old.items():
                if new.get(name) != key and guards.get(key) == changed.id:
                    del guards[key]
            for name, key in new.items():
                if old.get(name) != key:
                    if key in guards and guards[key] != changed.id:
                        taken = taken or name
                    guards[key] = changed.id
            if after is None:
                contacts.pop(changed.id, None)
            else:
                contacts[changed.id] = after
        if taken:
            raise TakenIdentifier(taken)
        if stale:
            raise StaleContact()
        self._contacts, self._guards = contacts, guards
        self._mark_dirty(after or before for before, after in changes)  # type: ignore[misc]  # one is set
        self.outbox.put(messages)

    def transaction_batches(self, changes: Sequence[ContactChange]) -> list[list[ContactChange]]:
        by_shard = sorted(changes, key=lambda change: shard_of((change[1] or change[0]).ordinal))  # type: ignore[union-attr]
        return [by_shard[i : i + self.BATCH] for i in range(0, len(by_shard), self.BATCH)]

    def get_contact(self, contact_id: str) -> Contact | None:
        return self._contacts.get(contact_id)

    def get_contacts(self, contact_ids: Iterable[str]) -> dict[str, Contact]:
        return {i: self._contacts[i] for i in dict.fromkeys(contact_ids) if i in self._contacts}

    def find_contact_id(self, *, external_id: str | None = None, email: str | None = None) -> str | None:
        if external_id:
            return self._guards.get(("external_id", external_id))
        return self._guards.get(("email", email)) if email else None

    def find_contact_ids_many(
        self, *, external_ids: Iterable[str] = (), emails: Iterable[str] = ()
    ) -> tuple[dict[str, str], dict[str, str]]:
        by_external_id = {
            x: self._guards[("external_id", x)] for x in external_ids if ("external_id", x) in self._guards
        }
        by_email = {e: self._guards[("email", e)] for e in emails if ("email", e) in self._guards}
        return by_external_id, by_email

    def _in_order(self) -> list[Contact]:
        return sorted(self._contacts.values(), key=lambda c: (shard_of(c.ordinal), c.id))

    def page_of_shards(self, limit: int, start: Position) -> tuple[list[Contact], Position]:
        return _page(self._in_order(), lambda c: [shard_of(c.ordinal), c.id], limit, start)

    def page_of_group(self, group_id: str, limit: int, start: Position) -> tuple[list[Contact], Position]:
        members = sorted((c for c in self._contacts.values() if c.group == group_id), key=lambda c: c.id)
        return _page(members, lambda c: c.id, limit, start)

    def tag_ordinals(self, tag: str) -> set[int]:
        return self._carrying(tag)

    def events_of(self, contact: Contact, limit: int, start: Position) -> tuple[list[dict[str, Any]], Position]:
        return _page(self._events_of(contact.id), lambda e: e["id"], limit, start)

    def delete_contact_records(self, contact: Contact) -> int:
        """Its events (its rewards and announcements live in the engagement and trigger fakes)."""
        return len(self._events.pop(contact.id, {}))

    def read_contact(self, contact_id: str) -> tuple[Contact | None, list[dict[str, Any]]]:
        contact = self._contacts.get(contact_id)
        return contact, self._events_of(contact_id) if contact else []

    def read_shard(self, shard: int, with_events: bool = True) -> tuple[list[Contact], dict[str, list[dict[str, Any]]]]:
        contacts = sorted((c for c in self._contacts.values() if shard_of(c.ordinal) == shard), key=lambda c: c.id)
        events = {c.id: self._events_of(c.id) for c in contacts if with_events and self._events.get(c.id)}
        return contacts, events

    def postings(self, tags: Iterable[str]) -> dict[str, Ordinals]:
        return {tag: np.array(sorted(self._carrying(tag)), dtype=np.int64) for tag in tags}

    def count_tag(self, tag: str) -> int:
        return len(self._carrying(tag))

    def _carrying(self, tag: str) -> set[int]:
        return {c.ordinal for c in self._contacts.values() if tag == EVERYONE or tag in c.tags}


class InMemorySnapshots:
    """SnapshotStore in memory: images by key, manifests by shard (``published`` counts the publishes)."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.objects: dict[str, bytes] = {}
        self.manifests: dict[int, Manifest] = {}
        self.published = 0

    def manifest(self, shard: int) -> Manifest | None:
        return self.manifests.get(shard)

    def manifests_of(self, shards: Iterable[int]) -> dict[int, Manifest]:
        return {shard: self.manifests[shard] for shard in shards if shard in self.manifests}

    def load(self, manifest: Manifest) -> bytes | None:
        return self.objects.get(manifest.key) if manifest.key else None

    def publish(self, shard: int, data: bytes, replacing: Manifest | None, built_at: str, contacts: int) -> bool:
        current = self.manifests.get(shard)
        if (current.version if current else 0) != (replacing.version if replacing else 0):
            return False
        key = f"{self.tenant_id}/{shard:02d}/{secrets.token_hex(8)}.npz"
        self.objects[key] = data
        version = (current.version if current else 0) + 1
        self.manifests[shard] = Manifest(version, key, built_at, contacts, len(data), None)
        if current is not None and current.key:
            self.objects.pop(current.key, None)
        self.published += 1
        return True

    def request_compaction(self, shard: int, now: str, not_since: str) -> bool:
        current = self.manifests.get(shard) or Manifest(0, None)
        if current.requested_at is not None and current.requested_at >= not_since:
            return False
        self.manifests[shard] = replace(current, requested_at=now)
        return True


class InMemoryCampaigns:
    """CampaignRepository in memory."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.stored: dict[str, Campaign] = {}

    def create(self, campaign: Campaign) -> None:
        assert campaign.id not in self.stored
        self.stored[campaign.id] = campaign

    def save_content(self, before: Campaign, after: Campaign) -> None:
        current = self.stored.get(before.id)
        if current is None or (current.version, current.status) != (before.version, before.status):
            raise StaleCampaign(before.id)
        self.stored[before.id] = replace(current, **{name: getattr(after, name) for name in CONTENT})

    def get(self, campaign_id: str) -> Campaign | None:
        return self.stored.get(campaign_id)

    def page(self, limit: int, start: Position) -> tuple[list[Campaign], Position]:
        return _page(self.all_campaigns(), lambda c: c.id, limit, start)

    def all_campaigns(self) -> list[Campaign]:
        return [c for _, c in sorted(self.stored.items())]

    def delete(self, campaign: Campaign) -> None:
        current = self.stored.get(campaign.id)
        if current is None or current.status != campaign.status:
            raise StaleCampaign(campaign.id)
        del self.stored[campaign.id]

    def change_status(
        self, campaign_id: str, allowed: Iterable[str], status: str, reason: str | None = None, **fields: Any
    ) -> bool:
        current = self.stored.get(campaign_id)
        if current is None or current.status not in set(allowed):
            return False
        self.stored[campaign_id] = replace(current, status=status, status_reason=reason, **fields)
        return True

    def record_winner(self, campaign_id: str, variant: str, at: str) -> bool:
        c = self.stored.get(campaign_id)
        if c is None or c.winner is not None:
            return False
        self.stored[campaign_id] = replace(c, winner=variant, winner_at=at)
        return True

    def finish_if_complete(
        self, campaign_id: str, shards: int, status: str, finished_at: str, needs_winner: bool = False
    ) -> bool:
        c = self.stored.get(campaign_id)
        if c is None or c.status != "sending" or c.shards_done != shards or c.batches_done < c.batches_total:
            return False
        if needs_winner and c.winner is None:
            return False
        self.stored[campaign_id] = replace(c, status=status, finished_at=finished_at)
        return True

    def add_counts(self, campaign_id: str, counts: Mapping[str, int]) -> None:
        """What the sending side adds: progress fields, or recipient counters."""
        c = self.stored[campaign_id]
        progress: dict[str, Any] = {}  # shards_done, batches_total, batches_done, audience
        counters = dict(c.counters)
        for name, n in counts.items():
            if hasattr(c, name):
                progress[name] = (getattr(c, name) or 0) + n
            else:
                counters[name] = counters.get(name, 0) + n
        self.stored[campaign_id] = replace(c, counters=counters, **progress)


class InMemorySends:
    """SendLedger in memory, over the fakes it reads (contacts, suppressions) and counts into (campaigns)."""

    def __init__(
        self, campaigns: InMemoryCampaigns, contacts: InMemoryContacts, suppressions: InMemorySuppressions
    ) -> None:
        self.campaigns, self.contacts, self.suppressions = campaigns, contacts, suppressions
        self._builds: dict[tuple[str, int], dict[str, Any]] = {}
        self._batches: dict[str, dict[str, dict[str, Any]]] = {}
        self._records: dict[str, dict[str, tuple[str, RecipientRecord]]] = {}
        """campaign → contact → (the claim that holds it, its record)"""
        self._ledgers: dict[str, Ledger] = {}
        self._lane_ms: int | None = None
        self._mail_events: set[tuple[str, str]] = set()
        self._variants: dict[str, dict[str, dict[str, int]]] = {}

    def acquire_build(self, campaign_id: str, shard: int, build_id: str, now_ms: int, lease_ms: int) -> str:
        build = self._builds.get((campaign_id, shard))
        if build is None or (build["state"] == "building" and build["lease_until"] < now_ms):
            self._builds[(campaign_id, shard)] = {
                "state": "building",
                "build_id": build_id,
                "lease_until": now_ms + lease_ms,
            }
            return "acquired"
        return "built" if build["state"] == "built" else "busy"

    def write_batches(
        self,
        campaign_id: str,
        shard: int,
        build_id: str,
        batches: list[list[tuple[str, str]]],
        held_from: int | None = None,
    ) -> None:
        own = self._batches.setdefault(campaign_id, {})
        for key in [k for k in own if k.startswith(f"B#{shard:02d}#")]:
            del own[key]
        for n, recipients in enumerate(batches):
            held = held_from is not None and n >= held_from
            own[f"B#{shard:02d}#{n:05d}"] = {
                "recipients": [tuple(r) for r in recipients],
                "state": "queued",
                "held": held,
            }

    def finish_build(self, campaign_id: str, shard: int, build_id: str, batches: int, audience: int) -> bool:
        build = self._builds.get((campaign_id, shard))
        if build is None or build["state"] != "building" or build["build_id"] != build_id:
            return False
        build["state"] = "built"
        self.campaigns.add_counts(campaign_id, {"shards_done": 1, "batches_total": batches, "audience": audience})
        return True

    def batches_of(self, campaign_id: str, shard: int | None = None) -> list[Batch]:
        prefix = "B#" if shard is None else f"B#{shard:02d}#"
        return [
            Batch(key, list(b["recipients"]), b["state"] == "done", b["held"])
            for key, b in sorted(self._batches.get(campaign_id, {}).items())
            if key.startswith(prefix)
        ]

    def claim(
        self,
        campaign_id: str,
        claim_id: str,
        claims: list[Claim],
        ledgers: list[Ledger],
        at: str,
        require_sending: bool = True,
        continuing: bool = False,
    ) -> list[Claim]:
        campaign = self.campaigns.get(campaign_id)
        sending = {"sending", "sent"} if continuing else {"sending"}
        if require_sending and (campaign is None or campaign.status not in sending):
            raise NotSending(campaign_id)
        records = self._records.setdefault(campaign_id, {})
        by_contact = {ledger.contact_id: ledger for ledger in ledgers}
        for c in claims:  # as the transaction: a moved ledger fails it whole
            ledger = by_contact.get(c.contact_id)
            if ledger is not None and c.state == CLAIMED:
                stored = self._ledgers.get(c.contact_id)
                if (stored.version if stored else 0) != ledger.version:
                    raise LedgerMoved(campaign_id)
        landed = [c for c in claims if c.contact_id not in records or records[c.contact_id][1].state == RELEASED]
        counts: dict[str, int] = {}
        for c in landed:
            records[c.contact_id] = (claim_id, RecipientRecord(c.contact_id, c.email, c.state, at, c.reason))
            ledger = by_contact.get(c.contact_id)
            if ledger is not None and c.state == CLAIMED:
                self._ledgers[c.contact_id] = Ledger(c.contact_id, ledger.version + 1, list(ledger.sent_at))
            counter = "claimed" if c.state == CLAIMED else c.state
            counts[counter] = counts.get(counter, 0) + 1
        if campaign is not None:
            self.campaigns.add_counts(campaign_id, counts)
        return landed

    def settle(self, campaign_id: str, claim_id: str, outcomes: list[Outcome], at: str, batch_key: str | None) -> None:
        records = self._records.setdefault(campaign_id, {})
        for outcome in outcomes:
            held = records.get(outcome.contact_id)
            if held is None or held[0] != claim_id or held[1].state != CLAIMED:
                raise RuntimeError(f"{outcome.contact_id} is not held by claim {claim_id}")
        counts: dict[str, int] = {}
        for outcome in outcomes:
            o = outcome
            records[o.contact_id] = (
                claim_id,
                RecipientRecord(o.contact_id, o.email, o.state, at, o.reason, o.message_id, variant=o.variant),
            )
            counts[outcome.state] = counts.get(outcome.state, 0) + 1
            if o.variant and o.state == DELIVERED:
                self._variant_counts(campaign_id, o.variant)["sent"] += 1
        batch = self._batches.get(campaign_id, {}).get(batch_key or "")
        if batch is not None and batch["state"] != "done":
            batch["state"] = "done"
            counts["batches_done"] = 1
        if counts:
            self.campaigns.add_counts(campaign_id, counts)

    def all_send_records(self, campaign_id: str) -> list[RecipientRecord]:
        return [record for _, (_, record) in sorted(self._records.get(campaign_id, {}).items())]

    def send_records(
        self, campaign_id: str, state: str | None, limit: int, start: Position
    ) -> tuple[list[RecipientRecord], Position]:
        chosen = [r for r in self.all_send_records(campaign_id) if state is None or r.state == state]
        return _page(chosen, lambda r: r.contact_id, limit, start)

    def mark_feedback(self, campaign_id: str, contact_id: str, state: str) -> bool:
        held = self._records.get(campaign_id, {}).get(contact_id)
        if held is None or held[1].state != DELIVERED:
            return False
        self._records[campaign_id][contact_id] = (held[0], replace(held[1], state=state))
        self.campaigns.add_counts(campaign_id, {state: 1})
        return True

    def _variant_counts(self, campaign_id: str, variant: str) -> dict[str, int]:
        return self._variants.setdefault(campaign_id, {}).setdefault(variant, dict.fromkeys(VARIANT_COUNTERS, 0))

    def variant_stats(self, campaign_id: str) -> dict[str, dict[str, int]]:
        return {name: dict(counts) for name, counts in self._variants.get(campaign_id, {}).items()}

    def record_engagements(self, campaign_id: str, engagements: list[RecipientEvent]) -> int:
        return sum(self._record_engagement(campaign_id, *astuple(engagement)) for engagement in engagements)

    def _record_engagement(
        self, campaign_id: str, contact_id: str, kind: str, event_key: str, at: str, variant: str | None
    ) -> bool:
        counted = (campaign_id, event_key) not in self._mail_events
        self._mail_events.add((campaign_id, event_key))
        moved = self._variant_counts(campaign_id, variant) if variant else {}
        if counted and kind in TOTALS:
            self.campaigns.add_counts(campaign_id, {TOTALS[kind]: 1})
            if variant:
                moved[TOTALS[kind]] += 1
        held = self._records.get(campaign_id, {}).get(contact_id)
        if held is not None:
            first = getattr(held[1], f"{kind}_at")
            if first is None:
                self.campaigns.add_counts(campaign_id, {kind: 1})
                if variant:
                    moved[kind] += 1
            if first is None or at < first:
                self._records[campaign_id][contact_id] = (held[0], replace(held[1], **{f"{kind}_at": at}))
        return counted

    def recipient_facts(self, recipients: list[tuple[str, str]]) -> RecipientFacts:
        facts = RecipientFacts(self.contacts.get_contacts(c for c, _ in recipients), {}, {})
        for contact_id, email in recipients:
            suppression = self.suppressions.get_suppression(email)
            if suppression is not None:
                facts.suppressions[email] = suppression.reason
            if contact_id in self._ledgers:
                facts.ledgers[contact_id] = self._ledgers[contact_id]
        return facts

    def reserve_send_slots(self, count: int, per_second: int, now_ms: int, max_ahead_ms: int) -> int | None:
        span = send_span_ms(count, per_second)
        if self._lane_ms is None or self._lane_ms <= now_ms:
            self._lane_ms = now_ms + span
            return now_ms
        if self._lane_ms > now_ms + max_ahead_ms:
            return None
        self._lane_ms += span
        return self._lane_ms - span


class InMemoryMembership:
    """MembershipLedger in memory, writing membership moves and counts into the tenant's InMemorySegments."""

    def __init__(self, segments: InMemorySegments) -> None:
        self._segments = segments
        self._stamps: dict[str, tuple[int, dict[str, bool], str, int]] = {}  # contact → seq, known, at, shard
        self._outbox: dict[str, dict[str, dict[str, Any]]] = {}

    def _stamp(self, contact_id: str) -> Stamp:
        if contact_id not in self._stamps:
            return Stamp()
        seq, known, _, _ = self._stamps[contact_id]
        return Stamp(seq, dict(known))

    def read_stamps(self, contacts: list[tuple[str, int]]) -> dict[str, Stamp]:
        return {contact_id: self._stamp(contact_id) for contact_id, _ in contacts}

    def memberships(self, ordinals: list[int], places: list[tuple[str, str]]) -> dict[int, dict[tuple[str, str], bool]]:
        return {o: {(s, g): o in self._segments.shard_members(s, g, shard_of(o)) for s, g in places} for o in ordinals}

    def commit(self, change: MembershipCommit) -> None:
        contact_id, ordinal, stamp = change.contact_id, change.ordinal, change.stamp
        if self._stamp(contact_id).seq != stamp.seq:
            raise Superseded(contact_id)
        for check in change.checks:
            segment = self._segments.get(check.segment_id)
            if segment is None or (segment.generation, segment.job_id) != (check.generation, check.job_id):
                raise Superseded(contact_id)
        self._stamps[contact_id] = (stamp.seq + 1, dict(change.known), change.changed_at, shard_of(ordinal))
        for move in change.moves:
            slots = self._segments._members.setdefault((move.segment_id, move.generation), {})
            shard = slots.setdefault(shard_of(ordinal), set())
            (shard.add if move.enter else shard.discard)(ordinal)
        for check in change.checks:
            if check.count_delta:
                segment = self._segments._segments[check.segment_id]
                count = (segment.member_count or 0) + check.count_delta
                self._segments._segments[check.segment_id] = replace(segment, member_count=count)
        self._outbox.setdefault(contact_id, {}).update((event["id"], event) for event in change.events)

    def pending_events(self, contact_id: str, ordinal: int) -> list[dict[str, Any]]:
        return [event for _, event in sorted(self._outbox.get(contact_id, {}).items())]

    def forget_events(self, contact_id: str, ordinal: int, event_ids: list[str]) -> None:
        for event_id in event_ids:
            self._outbox.get(contact_id, {}).pop(event_id, None)

    def stamps_changed_since(self, shard: int, moment: str) -> list[str]:
        return [c for c, (_, _, at, in_shard) in self._stamps.items() if in_shard == shard and at >= moment]


class InMemoryEngagements:
    """EngagementRepository in memory."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._engagements: dict[tuple[str, str], Engagement] = {}
        self._rewards: dict[str, dict[str, Reward]] = {}

    def create(self, engagement: Engagement) -> None:
        if (engagement.kind, engagement.id) in self._engagements:
            raise ValueError(f"{engagement.id} exists")
        self._engagements[(engagement.kind, engagement.id)] = engagement

    def save(self, before: Engagement, after: Engagement) -> None:
        current = self._engagements.get((before.kind, before.id))
        if current is None or current.version != before.version:
            raise StaleEngagement(before.id)
        self._engagements[(after.kind, after.id)] = after

    def get(self, kind: str, engagement_id: str) -> Engagement | None:
        return self._engagements.get((kind, engagement_id))

    def page(self, kind: str, limit: int, start: Position) -> tuple[list[Engagement], Position]:
        return _page(self.all_of(kind), lambda e: e.id, limit, start)

    def all_of(self, kind: str) -> list[Engagement]:
        return sorted((e for (k, _), e in self._engagements.items() if k == kind), key=lambda e: e.id)

    def delete(self, engagement: Engagement) -> None:
        current = self._engagements.get((engagement.kind, engagement.id))
        if current is not None and current.version != engagement.version:
            raise StaleEngagement(engagement.id)
        self._engagements.pop((engagement.kind, engagement.id), None)

    def add_reward(self, ordinal: int, reward: Reward) -> bool:
        ledger = self._rewards.setdefault(reward.contact_id, {})
        if reward.id in ledger:
            return False
        ledger[reward.id] = reward
        return True

    def put_rewards(self, lines: list[tuple[int, Reward]]) -> None:
        for _, reward in lines:
            self._rewards.setdefault(reward.contact_id, {})[reward.id] = reward

    def rewards_page(self, contact_id: str, ordinal: int, limit: int, start: Position) -> tuple[list[Reward], Position]:
        return _page(self.all_rewards(contact_id, ordinal), lambda r: r.id, limit, start)

    def all_rewards(self, contact_id: str, ordinal: int) -> list[Reward]:
        return [reward for _, reward in sorted(self._rewards.get(contact_id, {}).items())]


class InMemoryDirectory:
    """TenantDirectory in memory; ``account(tenant_id)`` is the TenantAccount of one of its tenants."""

    def __init__(self) -> None:
        self._tenants: dict[str, Tenant] = {}
        self._keys: dict[str, dict[str, tuple[ApiKey, str]]] = {}
        self._owners: dict[str, KeyOwner] = {}

    def create_tenant(self, tenant: Tenant, admin_key: ApiKey, key_hash: str) -> None:
        if tenant.id in self._tenants:
            raise ValueError(f"{tenant.id} exists")
        self._tenants[tenant.id] = replace(tenant, version=1)
        self.account(tenant.id).put_api_key(admin_key, key_hash)

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants.get(tenant_id)

    def list_tenants(self, limit: int, start: Position) -> tuple[list[Tenant], Position]:
        return _page(sorted(self._tenants.values(), key=lambda t: t.id), lambda t: t.id, limit, start)

    def save_tenant_fields(self, tenant: Tenant, **fields: Any) -> Tenant:
        current = self._tenants.get(tenant.id)
        if current is None or current.version != tenant.version:
            raise StaleWrite(tenant.id)
        saved = replace(current, **fields, version=current.version + 1)
        self._tenants[tenant.id] = saved
        return saved

    def find_key_by_hash(self, key_hash: str) -> KeyOwner | None:
        return self._owners.get(key_hash)

    def account(self, tenant_id: str) -> InMemoryAccount:
        return InMemoryAccount(self, tenant_id)


class InMemoryAccount:
    """TenantAccount in memory: one tenant's view of an InMemoryDirectory."""

    def __init__(self, directory: InMemoryDirectory, tenant_id: str) -> None:
        self.directory, self.tenant_id = directory, tenant_id

    def tenant(self) -> Tenant | None:
        return self.directory.get_tenant(self.tenant_id)

    def save_fields(self, tenant: Tenant, **fields: Any) -> Tenant:
        assert tenant.id == self.tenant_id
        return self.directory.save_tenant_fields(tenant, **fields)

    def put_api_key(self, key: ApiKey, key_hash: str) -> None:
        self.directory._keys.setdefault(self.tenant_id, {})[key.id] = (replace(key, tenant_id=self.tenant_id), key_hash)
        self.directory._owners[key_hash] = KeyOwner(self.tenant_id, key.id, key.role, key.name)

    def list_api_keys(self, limit: int, start: Position) -> tuple[list[ApiKey], Position]:
        keys = [key for _, (key, _) in sorted(self.directory._keys.get(self.tenant_id, {}).items())]
        return _page(keys, lambda k: k.id, limit, start)

    def admin_key_ids(self) -> list[str]:
        return [key.id for key, _ in self.directory._keys.get(self.tenant_id, {}).values() if key.role == "admin"]

    def get_api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        return self.directory._keys.get(self.tenant_id, {}).get(key_id)

    def delete_api_key(self, key_id: str, key_hash: str) -> bool:
        found = self.directory._keys.get(self.tenant_id, {}).pop(key_id, None)
        self.directory._owners.pop(key_hash, None)
        return found is not None


class InMemorySuppressions:
    """SuppressionList in memory."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._suppressed: dict[str, Suppression] = {}

    def suppress(self, suppression: Suppression) -> bool:
        if suppression.email in self._suppressed:
            return False
        self._suppressed[suppression.email] = suppression
        return True

    def get_suppression(self, email: str) -> Suppression | None:
        return self._suppressed.get(email)

    def unsuppress(self, email: str) -> None:
        self._suppressed.pop(email, None)

    def suppressions_page(self, limit: int, start: Position) -> tuple[list[Suppression], Position]:
        ordered = [s for _, s in sorted(self._suppressed.items())]
        return _page(ordered, lambda s: s.email, limit, start)


class InMemoryTrail:
    """AuditTrail in memory."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._windows: dict[tuple[str, int], int] = {}
        self._entries: list[tuple[str, dict[str, Any]]] = []

    def take_request(self, key: str, second: int, limit: int) -> bool:
        taken = self._windows.get((key, second), 0)
        if taken >= limit:
            return False
        self._windows[(key, second)] = taken + 1
        return True

    def record(self, at: str, request_id: str, entry: dict[str, Any], expires_at: int) -> None:
        self._entries.append((f"{at}#{request_id}", entry))

    def audit_page(self, limit: int, start: Position) -> tuple[list[dict[str, Any]], Position]:
        newest_first = sorted(self._entries, key=lambda e: e[0], reverse=True)
        after = (start or {}).get("after")
        rest = [e for e in newest_first if after is None or e[0] < after]
        chosen = rest[:limit]
        return [entry for _, entry in chosen], ({"after": chosen[-1][0]} if len(rest) > limit else None)


class InMemoryTriggers:
    """TriggerRepository in memory."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._triggers: dict[str, Trigger] = {}
        self._runs: dict[tuple[str, str], Run] = {}
        self._batches: dict[tuple[str, str], list[tuple[list[str], bool]]] = {}
        self._fired: set[str] = set()
        self._mails: dict[str, str] = {}
        self._given: dict[str, set[str]] = {}

    def create(self, trigger: Trigger) -> None:
        if trigger.id in self._triggers:
            raise ValueError(f"{trigger.id} exists")
        self._triggers[trigger.id] = trigger

    def save(self, before: Trigger, after: Trigger) -> None:
        current = self._triggers.get(before.id)
        if current is None or current.version != before.version:
            raise StaleTrigger(before.id)
        self._triggers[after.id] = after

    def get(self, trigger_id: str) -> Trigger | None:
        return self._triggers.get(trigger_id)

    def page(self, limit: int, start: Position) -> tuple[list[Trigger], Position]:
        return _page(self.all_triggers(), lambda t: t.id, limit, start)

    def all_triggers(self) -> list[Trigger]:
        return sorted(self._triggers.values(), key=lambda t: t.id)

    def delete(self, trigger: Trigger) -> None:
        current = self._triggers.get(trigger.id)
        if current is not None and current.version != trigger.version:
            raise StaleTrigger(trigger.id)
        self._triggers.pop(trigger.id, None)

    def advance_schedule(self, trigger: Trigger, next_run_at: str) -> bool:
        current = self._triggers.get(trigger.id)
        if current is None or current.next_run_at != trigger.next_run_at:
            return False
        self._triggers[trigger.id] = replace(current, next_run_at=next_run_at)
        return True

    def start_run(self, trigger_id: str, run: Run, batches: list[list[str]]) -> bool:
        if (trigger_id, run.id) in self._runs:
            return False
        counters = dict.fromkeys(RUN_COUNTERS, 0)
        self._runs[(trigger_id, run.id)] = replace(run, batches_total=len(batches), batches_done=0, counters=counters)
        self._batches[(trigger_id, run.id)] = [(list(contacts), False) for contacts in batches]
        return True

    def get_run(self, trigger_id: str, run_id: str) -> Run | None:
        return self._runs.get((trigger_id, run_id))

    def runs_page(self, trigger_id: str, limit: int, start: Position) -> tuple[list[Run], Position]:
        newest_first = sorted((r for (t, _), r in self._runs.items() if t == trigger_id), key=lambda r: r.id)[::-1]
        after = (start or {}).get("after")
        rest = [r for r in newest_first if after is None or r.id < after]
        return rest[:limit], ({"after": rest[limit - 1].id} if len(rest) > limit else None)

    def batch_contacts(self, trigger_id: str, run_id: str, number: int) -> tuple[list[str], bool]:
        contacts, done = self._batches[(trigger_id, run_id)][number]
        return list(contacts), done

    def finish_batch(self, trigger_id: str, run_id: str, number: int, counts: dict[str, int], at: str) -> bool:
        contacts, done = self._batches[(trigger_id, run_id)][number]
        if done:
            return False
        self._batches[(trigger_id, run_id)][number] = (contacts, True)
        run = self._runs[(trigger_id, run_id)]
        self._runs[(trigger_id, run_id)] = replace(
            run, batches_done=run.batches_done + 1, counters=_added(run.counters, counts)
        )
        return True

    def finish_run_if_complete(self, trigger_id: str, run_id: str, at: str) -> bool:
        run = self._runs.get((trigger_id, run_id))
        if run is None or run.finished_at or run.batches_total is None or run.batches_done < run.batches_total:
            return False
        self._runs[(trigger_id, run_id)] = replace(run, finished_at=at)
        return True

    def has_fired(self, contact_id: str, key: str) -> bool:
        return key in self._fired

    def record_firing(
        self, trigger_id: str, contact_id: str, key: str, run: Run, counts: dict[str, int], at: str
    ) -> bool:
        if key in self._fired:
            return False
        self._fired.add(key)
        current = self._runs.get((trigger_id, run.id)) or replace(run, counters=dict.fromkeys(RUN_COUNTERS, 0))
        self._runs[(trigger_id, run.id)] = replace(current, counters=_added(current.counters, counts))
        return True

    def claim_mail(self, contact_id: str, key: str) -> bool:
        if key in self._mails:
            return False
        self._mails[key] = "claimed"
        return True

    def settle_mail(self, contact_id: str, key: str, state: str, message_id: str | None, reason: str | None) -> None:
        self._mails[key] = state

    def release_mail(self, contact_id: str, key: str) -> None:
        if self._mails.get(key) == "claimed":
            del self._mails[key]

    def give_announcement(self, contact_id: str, announcement_id: str, at: str) -> None:
        self._given.setdefault(contact_id, set()).add(announcement_id)

    def personal_announcements(self, contact_id: str, ordinal: int) -> set[str]:
        return set(self._given.get(contact_id, set()))


def _added(counters: dict[str, int], counts: dict[str, int]) -> dict[str, int]:
    return {name: counters.get(name, 0) + counts.get(name, 0) for name in RUN_COUNTERS}


class InMemoryJobs:
    """JobRepository in memory."""

    COUNTERS = ("processed", "created", "updated", "unchanged", "failed", "contacts", "members", "chunks_done")

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._jobs: dict[str, Job] = {}
        self._chunks: dict[str, list[tuple[str, Any]]] = {}
        self._errors: dict[str, dict[int, dict[str, Any]]] = {}
        self._lane: set[str] = set()

    def create_job(self, job: Job, chunks: list[Any], errors: list[dict[str, Any]]) -> None:
        counts = dict.fromkeys(self.COUNTERS, 0) | {"failed": len(errors), "processed": len(errors)}
        self._jobs[job.id] = replace(job, chunks_total=len(chunks), counts=counts)
        self._chunks[job.id] = [("pending", payload) for payload in chunks]
        self.record_errors(job.id, errors)

    def record_errors(self, job_id: str, errors: list[dict[str, Any]]) -> None:
        found = self._errors.setdefault(job_id, {})
        for error in errors:
            found[error["line"]] = {"line": error["line"], "field": error.get("field"), "message": error["message"]}

    def get_job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def list_jobs(
        self, limit: int, start: Position, kind: str | None = None, status: str | None = None
    ) -> tuple[list[Job], Position]:
        after = (start or {}).get("before")
        newest_first = sorted(self._jobs.values(), key=lambda job: job.id, reverse=True)
        rest = [job for job in newest_first if after is None or job.id < after]
        read, more = rest[:limit], len(rest) > limit  # like DynamoDB, the filter applies to what a page read
        chosen = [job for job in read if kind in (None, job.kind) and status in (None, job.status)]
        return chosen, ({"before": read[-1].id} if more else None)

    def load_chunk(self, job_id: str, index: int) -> tuple[str, Any] | None:
        chunks = self._chunks.get(job_id, [])
        return chunks[index] if 0 <= index < len(chunks) else None

    def finish_chunk(self, job_id: str, index: int, counts: dict[str, int]) -> bool:
        state, payload = self._chunks[job_id][index]
        if state != "pending":
            return False
        self._chunks[job_id][index] = ("done", payload)
        job = self._jobs[job_id]
        added = {name: job.counts[name] + counts.get(name, 0) for name in self.COUNTERS}
        added["chunks_done"] = job.counts["chunks_done"] + 1
        self._jobs[job_id] = replace(job, counts=added)
        return True

    def set_status(self, job_id: str, status: str, *, expected: str, finished_at: str | None = None) -> bool:
        job = self._jobs[job_id]
        if job.status != expected:
            return False
        self._jobs[job_id] = replace(job, status=status, finished_at=finished_at or job.finished_at)
        return True

    def list_errors(self, job_id: str, limit: int, start: Position) -> tuple[list[dict[str, Any]], Position]:
        ordered = sorted(self._errors.get(job_id, {}).values(), key=lambda e: e["line"])
        return _page(ordered, lambda e: e["line"], limit, start)

    def set_detail(self, job_id: str, detail: dict[str, Any]) -> None:
        self._jobs[job_id] = replace(self._jobs[job_id], detail=dict(detail))

    def pending_chunks(self, job_id: str) -> list[int]:
        return [i for i, (state, _) in enumerate(self._chunks.get(job_id, [])) if state != "done"]

    def enter_lane(self, job_id: str, limit: int) -> bool:
        if job_id in self._lane or len(self._lane) < limit:
            self._lane.add(job_id)
            return True
        return False

    def leave_lane(self, job_ids: set[str]) -> None:
        self._lane -= job_ids

    def lane(self) -> set[str]:
        return set(self._lane)


class InMemoryCatalog:
    """CatalogRepository in memory; ``tags``, ``groups`` (ids, named after themselves) and ``types`` seed it."""

    def __init__(self, tags: Iterable[str] = (), groups: Iterable[str] = (), types: dict[str, str] | None = None):
        self._tags = {name: Tag(name, None, "2026-01-01T00:00:00Z") for name in tags}
        self._groups = {gid: Group(gid, gid, None, "2026-01-01T00:00:00Z") for gid in groups}
        self._types = dict(types or {})

    def create_tag(self, tag: Tag) -> None:
        if tag.name in self._tags:
            raise AlreadyExists(tag.name)
        self._tags[tag.name] = tag

    def get_tag(self, name: str) -> Tag | None:
        return self._tags.get(name)

    def update_tag_description(self, name: str, description: str | None) -> None:
        self._tags[name] = replace(self._tags[name], description=description)

    def usable_tag_names(self) -> set[str]:
        return {name for name, tag in self._tags.items() if not tag.deleting}

    def mark_tag_deleting(self, name: str) -> None:
        self._tags[name] = replace(self._tags[name], deleting=True)

    def list_tags(self, limit: int, start: Position) -> tuple[list[Tag], Position]:
        return _page(sorted(self._tags.values(), key=lambda t: t.name), lambda t: t.name, limit, start)

    def delete_tag(self, name: str) -> None:
        self._tags.pop(name, None)

    def create_group(self, group: Group) -> None:
        if group.id in self._groups or self.find_group_by_name(group.name) is not None:
            raise AlreadyExists(group.name)
        self._groups[group.id] = group

    def get_group(self, group_id: str) -> Group | None:
        return self._groups.get(group_id)

    def find_group_by_name(self, name: str) -> Group | None:
        return next((g for g in self._groups.values() if g.name.casefold() == name.casefold()), None)

    def list_groups(self, limit: int, start: Position) -> tuple[list[Group], Position]:
        return _page(self.all_groups(), lambda g: g.id, limit, start)

    def all_groups(self) -> list[Group]:
        return sorted(self._groups.values(), key=lambda g: g.id)

    def usable_group_ids(self) -> set[str]:
        return {gid for gid, group in self._groups.items() if not group.deleting}

    def update_group(self, before: Group, after: Group) -> None:
        taken = self.find_group_by_name(after.name)
        if taken is not None and taken.id != after.id:
            raise AlreadyExists(after.name)
        self._groups[after.id] = after

    def mark_group_deleting(self, group_id: str) -> None:
        self._groups[group_id] = replace(self._groups[group_id], deleting=True)

    def delete_group(self, group: Group) -> None:
        self._groups.pop(group.id, None)

    def attribute_types(self) -> dict[str, str]:
        return dict(self._types)

    def register_attribute_type(self, name: str, kind: str) -> str:
        return self._types.setdefault(name, kind)


class RecordingMailer:
    """Mailer that keeps what was sent; ``refuse`` makes the next sends fail with that MailError."""

    def __init__(self, verified: Iterable[str] = ()) -> None:
        self.sent: list[Mail] = []
        self.refuse: list[MailError] = []
        self.verified = set(verified)

    def send(self, mail: Mail) -> str:
        if self.refuse:
            raise self.refuse.pop(0)
        self.sent.append(mail)
        return f"msg-{len(self.sent)}"

    def sender_verified(self, address: str) -> bool:
        return address in self.verified or address.rsplit("@", 1)[-1] in self.verified


class RecordingQueues:
    """MessageQueues that keep what was sent, by queue name, for the test to read and take."""

    def __init__(self) -> None:
        self.sent: dict[str, list[dict[str, Any]]] = {}

    def send(self, queue_name: str, messages: Iterable[Mapping[str, Any]], delay_seconds: int = 0) -> int:
        batch = [dict(message) for message in messages]
        self.sent.setdefault(queue_name, []).extend(batch)
        return len(batch)

    def take(self, queue_name: str) -> list[dict[str, Any]]:
        return self.sent.pop(queue_name, [])


class InMemoryWebhooks:
    """WebhookRepository in memory (the contract cases hold it to the DynamoDB adapter)."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._webhooks: dict[str, Webhook] = {}
        self._logs: dict[str, dict[str, DeliveryRecord]] = {}

    def create(self, webhook: Webhook) -> None:
        assert webhook.id not in self._webhooks
        self._webhooks[webhook.id] = webhook

    def get(self, webhook_id: str) -> Webhook | None:
        return self._webhooks.get(webhook_id)

    def all_webhooks(self) -> list[Webhook]:
        return sorted(self._webhooks.values(), key=lambda w: w.id)

    def save(self, before: Webhook, after: Webhook) -> None:
        held = self._webhooks.get(before.id)
        if held is None or held.version != before.version:
            raise StaleWebhook(before.id)
        self._webhooks[before.id] = after

    def delete(self, webhook: Webhook) -> None:
        self._webhooks.pop(webhook.id, None)
        self._logs.pop(webhook.id, None)

    def log_delivery(self, webhook_id: str, record: DeliveryRecord) -> None:
        self._logs.setdefault(webhook_id, {})[f"{record.created_at}#{record.id}"] = record

    def deliveries(self, webhook_id: str, limit: int, start: Any) -> tuple[list[DeliveryRecord], Any]:
        ordered = sorted(self._logs.get(webhook_id, {}).items(), reverse=True)
        after = [(key, record) for key, record in ordered if start is None or key < start["sk"]]
        taken = after[:limit]
        return [record for _, record in taken], ({"sk": taken[-1][0]} if len(after) > limit else None)


class InMemoryJourneys:
    """JourneyRepository in memory (the contract cases hold it to the DynamoDB adapter)."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._journeys: dict[str, Journey] = {}
        self._versions: dict[tuple[str, int], Journey] = {}
        self._positions: dict[tuple[str, str], JourneyPosition] = {}
        self._totals: dict[str, dict[str, int]] = {}
        self._steps: dict[str, dict[str, dict[str, int]]] = {}

    def create(self, journey: Journey) -> None:
        assert journey.id not in self._journeys
        self._journeys[journey.id] = journey
        self._versions[(journey.id, journey.version)] = journey

    def save(self, before: Journey, after: Journey) -> None:
        held = self._journeys.get(before.id)
        if held is None or held.revision != before.revision:
            raise StaleJourney(before.id)
        self._journeys[before.id] = after
        self._versions[(after.id, after.version)] = after

    def advance_schedule(self, journey: Journey, next_run_at: str) -> bool:
        held = self._journeys.get(journey.id)
        if held is None or held.revision != journey.revision:
            return False
        self._journeys[journey.id] = replace(held, next_run_at=next_run_at, revision=held.revision + 1)
        return True

    def get(self, journey_id: str) -> Journey | None:
        return self._journeys.get(journey_id)

    def definition(self, journey_id: str, version: int) -> Journey | None:
        current = self._journeys.get(journey_id)
        if current is None:
            return None
        kept = self._versions.get((journey_id, version))
        return replace(current, **{name: getattr(kept, name) for name in ("name", *DEFINITION)},
                       version=version) if kept else None  # fmt: skip

    def page(self, limit: int, start: Position | None) -> tuple[list[Journey], Position | None]:
        return _page(sorted(self._journeys.values(), key=lambda j: j.id), lambda j: j.id, limit, start)

    def all_journeys(self) -> list[Journey]:
        return sorted(self._journeys.values(), key=lambda j: j.id)

    def delete(self, journey: Journey) -> None:
        held = self._journeys.get(journey.id)
        if held is None or held.revision != journey.revision:
            raise StaleJourney(journey.id)
        del self._journeys[journey.id]
        self._totals.pop(journey.id, None)
        self._steps.pop(journey.id, None)

    def position(self, journey_id: str, contact_id: str) -> JourneyPosition | None:
        return self._positions.get((journey_id, contact_id))

    def positions(self, journey_id: str, contact_ids: list[str]) -> dict[str, JourneyPosition]:
        return {c: self._positions[(journey_id, c)] for c in contact_ids if (journey_id, c) in self._positions}

    def move(
        self,
        before: JourneyPosition | None,
        after: JourneyPosition,
        steps: dict[tuple[str, str], int],
        journey: dict[str, int],
    ) -> bool:
        key = (after.journey_id, after.contact_id)
        held = self._positions.get(key)
        if (held is None) != (before is None) or (held and before and held.revision != before.revision):
            return False
        self._positions[key] = after
        totals = self._totals.setdefault(after.journey_id, dict.fromkeys(JOURNEY_COUNTERS, 0))
        for name, value in journey.items():
            totals[name] += value
        for (step, name), value in steps.items():
            counts = self._steps.setdefault(after.journey_id, {}).setdefault(step, dict.fromkeys(STEP_COUNTERS, 0))
            counts[name] += value
        return True

    def drop(self, position: JourneyPosition) -> None:
        self._positions.pop((position.journey_id, position.contact_id), None)

    def counters(self, journey_id: str) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        totals = dict(self._totals.get(journey_id, dict.fromkeys(JOURNEY_COUNTERS, 0)))
        return totals, {step: dict(counts) for step, counts in self._steps.get(journey_id, {}).items()}

    def due_scheduled(self, before: str) -> list[tuple[str, str]]:
        """(tenant, journey) of the running schedule journeys due at ``before`` (the index the minute reads)."""
        return [(self.tenant_id, j.id) for j in self.all_journeys()
                if j.status == RUNNING and j.next_run_at is not None and j.next_run_at <= before]  # fmt: skip

    def due(self, before: str) -> list[tuple[str, str, str]]:
        """(tenant, journey, contact) of the waits over at ``before`` (the index the minute schedule reads)."""
        return sorted(
            (self.tenant_id, position.journey_id, position.contact_id)
            for position in self._positions.values()
            if position.state in (ACTIVE, WAITING) and position.due_at is not None and position.due_at <= before
        )


class ScriptedTransport:
    """WebhookTransport that answers what the test scripted (then 200) and keeps every request."""

    def __init__(self) -> None:
        self.answers: list[Attempt] = []
        self.requests: list[tuple[str, bytes, dict[str, str]]] = []

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        self.requests.append((url, body, headers))
        return self.answers.pop(0) if self.answers else Attempt(200, 3)


def fake_ports(
    tenant_id: str = "tenant_fake", catalog: InMemoryCatalog | None = None, directory: InMemoryDirectory | None = None
) -> TenantPorts:
    segments = InMemorySegments(tenant_id)
    outbox = InMemoryOutbox()
    contacts = InMemoryContacts(tenant_id, outbox)
    suppressions = InMemorySuppressions(tenant_id)
    campaigns = InMemoryCampaigns(tenant_id)
    return TenantPorts(
        tenant_id=tenant_id,
        segments=segments,
        membership=InMemoryMembership(segments),
        engagements=InMemoryEngagements(tenant_id),
        account=(directory or InMemoryDirectory()).account(tenant_id),
        suppressions=suppressions,
        trail=InMemoryTrail(tenant_id),
        triggers=InMemoryTriggers(tenant_id),
        contacts=contacts,
        snapshots=InMemorySnapshots(tenant_id),
        campaigns=campaigns,
        sends=InMemorySends(campaigns, contacts, suppressions),
        jobs=InMemoryJobs(tenant_id),
        catalog=catalog or InMemoryCatalog(),
        queues=RecordingQueues(),
        outbox=outbox,
        mailer=RecordingMailer(verified=["example.com"]),
        webhooks=InMemoryWebhooks(tenant_id),
        webhook_transport=ScriptedTransport(),
        journeys=InMemoryJourneys(tenant_id),
    )


def fake_context(
    tenant_id: str = "tenant_fake",
    catalog: InMemoryCatalog | None = None,
    settings: dict[str, Any] | None = None,
) -> TenantContext:
    """A tenant on in-memory ports, as an admin request would see it (effective settings with ``settings``)."""
    effective = settings_rules.effective(settings)
    principal = Principal(kind="tenant", tenant_id=tenant_id, role="admin", key_id="key_fake", settings=effective)
    return TenantContext(fake_ports(tenant_id, catalog), effective, principal)


def fake_directory() -> TenantDirectory:
    """An empty directory, typed as the port (mypy checks InMemoryDirectory against it here)."""
    return InMemoryDirectory()
