"""Evaluating segments: the engine wired to storage, and the full-evaluation job.

A full evaluation is a job with one chunk (one SQS message) per contact shard.
Each shard's worker reads the shard's contacts and events in one query,
evaluates the compiled criteria over them as columns, and writes that shard's
members into a new membership *generation*. When every shard is done the
segment flips to the new generation (storage/segments.py), so readers see the
old membership or the new one, never a mix. A newer evaluation of the same
segment supersedes an older one: the older one's generation is discarded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.contacts import SHARDS
from chalicelib.domain.engine import BrokenReference, CompiledCriteria, compile_criteria
from chalicelib.domain.ids import new_id
from chalicelib.domain.population import Population
from chalicelib.services import jobs
from chalicelib.storage import catalog
from chalicelib.storage import contacts as contact_store
from chalicelib.storage import segments as store
from chalicelib.storage.contacts import Contact
from chalicelib.storage.jobs import Job
from chalicelib.storage.segments import Segment

EVALUATE = "segment_evaluate"
EVALUATING, READY, FAILED, INVALID = "evaluating", "ready", "failed", "invalid"


def snapshot(
    tenant_id: str, criteria: dict[str, Any], references: Iterable[str], segments: list[Segment] | None = None
) -> dict[str, Any]:
    """Everything evaluating ``criteria`` needs, frozen: the criteria, the criteria of every segment it
    includes (transitively) and the attribute types. A job evaluates one snapshot on every shard, so a
    segment edited meanwhile cannot make shards disagree (the edit starts its own evaluation)."""
    by_id = {s.id: s for s in (segments if segments is not None else store.all_segments(tenant_id))}
    library: dict[str, Any] = {}
    queue = list(references)
    while queue:
        segment_id = queue.pop()
        if segment_id in library or segment_id not in by_id:
            continue  # a missing one makes compilation raise BrokenReference
        library[segment_id] = by_id[segment_id].criteria
        queue += by_id[segment_id].references
    return {"criteria": criteria, "library": library, "types": catalog.attribute_types(tenant_id)}


def compile_snapshot(frozen: dict[str, Any]) -> CompiledCriteria:
    return compile_criteria(frozen["criteria"], frozen["types"], frozen["library"].get)


@dataclass(frozen=True)
class ShardResult:
    contacts: list[Contact]
    matches: np.ndarray

    @property
    def members(self) -> list[Contact]:
        return [contact for contact, hit in zip(self.contacts, self.matches, strict=True) if hit]


def evaluate_shards(
    tenant_id: str, compiled: CompiledCriteria, now: datetime, shards: range = range(SHARDS)
) -> Iterator[ShardResult]:
    """Evaluate shard by shard (a shard's contacts and events are in memory only while it is evaluated)."""
    for shard in shards:
        contacts, events = contact_store.read_shard(tenant_id, shard)
        yield ShardResult(contacts, compiled.evaluate(Population(contacts, events), now))


def start_evaluation(tenant_id: str, segment: Segment, clock: Clock = system_clock) -> dict[str, Any]:
    """Queue a full evaluation of ``segment``; the segment waits for this job (and ignores older ones)."""
    job_id = new_id("job")
    frozen = snapshot(tenant_id, segment.criteria, segment.references)
    store.update_fields(tenant_id, segment.id, job_id=job_id, status=EVALUATING, status_reason=None)
    return jobs.start_job(
        tenant_id,
        EVALUATE,
        [{"segment_id": segment.id, "shard": shard, "definition": frozen} for shard in range(SHARDS)],
        total=SHARDS,
        detail={"segment_id": segment.id, "version": segment.version},
        clock=clock,
        job_id=job_id,
    )


def _evaluate_shard(tenant_id: str, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One shard of a job: members go into the job's generation; publishing decides whether it is used."""
    try:
        compiled = compile_snapshot(payload["definition"])
    except BrokenReference as broken:
        raise RuntimeError(f"segment {broken.segment_id} it includes is gone") from broken
    shard = int(payload["shard"])
    (result,) = evaluate_shards(tenant_id, compiled, system_clock(), range(shard, shard + 1))
    members = result.members
    store.write_shard_members(tenant_id, payload["segment_id"], job_id, shard, (c.ordinal for c in members))
    return {"counts": {"processed": 1, "contacts": len(result.contacts), "members": len(members)}}


def _publish(tenant_id: str, job: Job) -> None:
    segment_id = job.detail["segment_id"]
    try:
        retired = store.publish(
            tenant_id,
            segment_id,
            job.id,
            {
                "member_count": job.counts["members"],
                "status": READY,
                "status_reason": None,
                "evaluated_version": job.detail["version"],
                "evaluated_at": to_rfc3339(system_clock()),
            },
        )
    except store.StaleSegment:
        store.delete_generation(tenant_id, segment_id, job.id)
        return
    if retired:
        store.delete_generation(tenant_id, segment_id, retired)
        store.update_fields(tenant_id, segment_id, retired_generation=None)


def _record_failure(tenant_id: str, job: Job) -> None:
    segment = store.get(tenant_id, job.detail["segment_id"])
    if segment is not None and segment.job_id == job.id and segment.status == EVALUATING:
        reason = f"evaluation {job.id} failed: {job.detail.get('failure', 'unknown')}; the previous membership stays"
        store.update_fields(tenant_id, segment.id, status=FAILED, status_reason=reason)
    store.delete_generation(tenant_id, job.detail["segment_id"], job.id)


jobs.register_worker(
    EVALUATE, _evaluate_shard, on_success=_publish, on_failure=_record_failure, counters=("contacts", "members")
)
