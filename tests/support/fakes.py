"""In-memory adapters of every port (chalicelib/ports), for unit tests that need no moto.

Each one passes the same contract tests as its DynamoDB/SQS adapter
(tests/integration/test_port_contracts.py), so a service tested on these behaves the same on AWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import Any

import numpy as np

from chalicelib.domain import settings as settings_rules
from chalicelib.domain.campaigns import Ordinals, Suppression
from chalicelib.domain.catalog import AlreadyExists, Group, Tag
from chalicelib.domain.contacts import SHARDS, Contact, shard_of
from chalicelib.domain.engagements import Engagement, Reward, StaleEngagement
from chalicelib.domain.jobs import Job
from chalicelib.domain.membership import MembershipCommit, Stamp, Superseded
from chalicelib.domain.planner import EVERYONE
from chalicelib.domain.segments import EVALUATION_FIELDS, Segment, StaleSegment
from chalicelib.domain.tenants import ApiKey, KeyOwner, StaleWrite, Tenant
from chalicelib.domain.triggers import RUN_COUNTERS, Run, StaleTrigger, Trigger
from chalicelib.ports import TenantPorts
from chalicelib.ports.mailer import Mail, MailError
from chalicelib.ports.segments import ANY_JOB, Position
from chalicelib.ports.tenants import TenantDirectory
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

    def delete(self, segment_id: str) -> None:
        self._segments.pop(segment_id, None)
        self._versions.pop(segment_id, None)
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


class InMemoryContacts:
    """ContactReader over the contacts a test puts in."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._contacts: dict[str, Contact] = {}
        self._events: dict[str, dict[str, dict[str, Any]]] = {}

    def put(self, contact: Contact, events: Iterable[dict[str, Any]] = ()) -> None:
        """Store (or replace) a contact and add events (the same id overwrites itself)."""
        self._contacts[contact.id] = contact
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

    def get_contacts(self, contact_ids: Iterable[str]) -> dict[str, Contact]:
        return {i: self._contacts[i] for i in dict.fromkeys(contact_ids) if i in self._contacts}

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


class InMemoryMembership:
    """MembershipLedger in memory, writing membership moves and counts into the tenant's InMemorySegments."""

    def __init__(self, segments: InMemorySegments) -> None:
        self._segments = segments
        self._stamps: dict[str, tuple[int, dict[str, bool], str, int]] = {}  # contact → seq, known, at, shard
        self._outbox: dict[str, dict[str, dict[str, Any]]] = {}

    def read_stamp(self, contact_id: str, ordinal: int) -> Stamp:
        if contact_id not in self._stamps:
            return Stamp()
        seq, known, _, _ = self._stamps[contact_id]
        return Stamp(seq, dict(known))

    def is_member(self, ordinal: int, places: list[tuple[str, str]]) -> dict[tuple[str, str], bool]:
        return {(s, g): ordinal in self._segments.shard_members(s, g, shard_of(ordinal)) for s, g in places}

    def commit(self, change: MembershipCommit) -> None:
        contact_id, ordinal, stamp = change.contact_id, change.ordinal, change.stamp
        if self.read_stamp(contact_id, ordinal).seq != stamp.seq:
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


def fake_ports(
    tenant_id: str = "tenant_fake", catalog: InMemoryCatalog | None = None, directory: InMemoryDirectory | None = None
) -> TenantPorts:
    segments = InMemorySegments(tenant_id)
    return TenantPorts(
        tenant_id=tenant_id,
        segments=segments,
        membership=InMemoryMembership(segments),
        engagements=InMemoryEngagements(tenant_id),
        account=(directory or InMemoryDirectory()).account(tenant_id),
        suppressions=InMemorySuppressions(tenant_id),
        trail=InMemoryTrail(tenant_id),
        triggers=InMemoryTriggers(tenant_id),
        contacts=InMemoryContacts(tenant_id),
        jobs=InMemoryJobs(tenant_id),
        catalog=catalog or InMemoryCatalog(),
        queues=RecordingQueues(),
        mailer=RecordingMailer(verified=["example.com"]),
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
