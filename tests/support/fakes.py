"""In-memory adapters of every port (chalicelib/ports), for unit tests that need no moto.

Each one passes the same contract tests as its DynamoDB/SQS adapter
(tests/integration/test_port_contracts.py), so a service tested on these behaves the same on AWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import Any

from chalicelib.domain import settings as settings_rules
from chalicelib.domain.contacts import SHARDS
from chalicelib.domain.jobs import Job
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
    return TenantPorts(
        tenant_id=tenant_id,
        segments=InMemorySegments(tenant_id),
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
