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
from chalicelib.domain.campaigns import Ordinals
from chalicelib.domain.contacts import SHARDS, Contact, shard_of
from chalicelib.domain.jobs import Job
from chalicelib.domain.membership import MembershipCommit, Stamp, Superseded
from chalicelib.domain.planner import EVERYONE
from chalicelib.domain.segments import EVALUATION_FIELDS, Segment, StaleSegment
from chalicelib.ports import TenantPorts
from chalicelib.ports.segments import ANY_JOB, Position
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
    """CatalogReader over what a test declares."""

    def __init__(self, tags: Iterable[str] = (), groups: Iterable[str] = (), types: dict[str, str] | None = None):
        self.tags, self.groups, self.types = set(tags), set(groups), dict(types or {})

    def usable_tag_names(self) -> set[str]:
        return set(self.tags)

    def usable_group_ids(self) -> set[str]:
        return set(self.groups)

    def attribute_types(self) -> dict[str, str]:
        return dict(self.types)


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


def fake_ports(tenant_id: str = "tenant_fake", catalog: InMemoryCatalog | None = None) -> TenantPorts:
    segments = InMemorySegments(tenant_id)
    return TenantPorts(
        tenant_id=tenant_id,
        segments=segments,
        membership=InMemoryMembership(segments),
        contacts=InMemoryContacts(tenant_id),
        jobs=InMemoryJobs(tenant_id),
        catalog=catalog or InMemoryCatalog(),
        queues=RecordingQueues(),
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
