"""Evaluating segments: the engine wired to storage, and the full-evaluation job.

A full evaluation is a job. Criteria made only of tags (domain/planner.py) are
one chunk: set algebra over the tag index, no contact read. Any other criteria
get one chunk (one SQS message) per contact shard: the shard's worker reads the
shard's contacts and events in one query, or, when the tag index narrows the
candidates to a small part of the shard, just those contacts; evaluates the
compiled criteria over them as columns; and writes that shard's members into a
new membership *generation*. When every chunk is done the segment flips to the
new generation (storage/segments.py), so readers see the old membership or the
new one, never a mix. A newer evaluation of the same segment supersedes an older
one: the older one's generation is discarded.

A contact that changes while its shard is evaluated is caught twice over: its
real-time update writes the pending generation too (services/membership.py),
and after writing, the worker re-runs that update for every contact of the shard
whose membership stamp moved since the shard was read.

When a flip replaces earlier members, the difference is announced as
``segment.entered`` / ``segment.exited`` events with the evaluation's cause
(e.g. ``refresh``: time passed and purchases aged out of a window).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from chalicelib.domain import planner
from chalicelib.domain.clock import Clock, parse_rfc3339, system_clock, to_rfc3339
from chalicelib.domain.contacts import SHARDS, Contact, contact_id_for
from chalicelib.domain.engine import BrokenReference, CompiledCriteria, compile_criteria
from chalicelib.domain.errors import NotFound
from chalicelib.domain.ids import new_id
from chalicelib.domain.jobs import Job
from chalicelib.domain.membership import transition_event
from chalicelib.domain.population import Population
from chalicelib.domain.segments import Segment, StaleSegment
from chalicelib.resources import MEMBERSHIP_EVENTS_QUEUE
from chalicelib.services import jobs, membership
from chalicelib.storage import catalog, queues
from chalicelib.storage import contacts as contact_store
from chalicelib.storage import membership as membership_store
from chalicelib.storage import segments as store

EVALUATE = "segment_evaluate"
EVALUATING, READY, FAILED, INVALID = "evaluating", "ready", "failed", "invalid"
POINT_READ_SHARE = 8
"""A shard reads only its candidates when they are at most 1/8 of its contacts: a point read costs at
least one read unit per contact, a shard query about one per 4 KB (several contacts with their events)."""
CLOCK_SKEW = timedelta(seconds=5)


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
    return {
        "criteria": criteria,
        "library": library,
        "types": catalog.attribute_types(tenant_id),
        "index": planner.index_formula(criteria, library.get),
        "narrowing": planner.narrowing(criteria, library.get),
        "events": planner.uses_events(criteria, library.get),
    }


def plan_of(frozen: dict[str, Any]) -> str:
    """How a snapshot is evaluated: ``index`` (posting lists only), ``narrowed`` (shards may read just the
    candidates the tag index leaves) or ``shards``."""
    return "index" if frozen["index"] is not None else "narrowed" if frozen["narrowing"] else "shards"


def compile_snapshot(frozen: dict[str, Any]) -> CompiledCriteria:
    return compile_criteria(frozen["criteria"], frozen["types"], frozen["library"].get)


@dataclass(frozen=True)
class ShardResult:
    contacts: list[Contact]
    matches: np.ndarray

    @property
    def members(self) -> list[Contact]:
        return [contact for contact, hit in zip(self.contacts, self.matches, strict=True) if hit]


def index_members(tenant_id: str, formula: dict[str, Any]) -> np.ndarray:
    """Members of a tag-only formula, from the posting lists alone."""
    return planner.evaluate_index(formula, contact_store.postings(tenant_id, planner.postings_needed(formula)))


def _candidates(tenant_id: str, frozen: dict[str, Any]) -> np.ndarray | None:
    """Ordinals that can match, when the tag index narrows the criteria to a few (None: read whole shards)."""
    if not frozen.get("narrowing"):
        return None
    candidates = index_members(tenant_id, frozen["narrowing"])
    everyone = contact_store.count_tag(tenant_id, planner.EVERYONE)
    return candidates if len(candidates) * POINT_READ_SHARE <= everyone else None


def _read(tenant_id: str, shard: int, candidates: np.ndarray | None, with_events: bool):
    if candidates is None:
        return contact_store.read_shard(tenant_id, shard)
    ids = [contact_id_for(int(o)) for o in candidates[candidates % SHARDS == shard]]
    if not with_events:
        found = contact_store.get_contacts(tenant_id, ids)
        return [found[i] for i in ids if i in found], {}
    contacts, events = [], {}
    for contact_id in ids:
        contact, own = contact_store.read_contact(tenant_id, contact_id)
        if contact is not None:
            contacts.append(contact)
            events[contact_id] = own
    return contacts, events


def evaluate_shards(
    tenant_id: str,
    compiled: CompiledCriteria,
    now: datetime,
    shards: range = range(SHARDS),
    frozen: dict[str, Any] | None = None,
) -> Iterator[ShardResult]:
    """Evaluate shard by shard (a shard's contacts and events are in memory only while it is evaluated).

    With the ``frozen`` snapshot, a shard whose candidates the tag index narrows reads only those."""
    candidates = _candidates(tenant_id, frozen) if frozen else None
    for shard in shards:
        contacts, events = _read(tenant_id, shard, candidates, bool(frozen is None or frozen.get("events")))
        yield ShardResult(contacts, compiled.evaluate(Population(contacts, events), now))


def start_evaluation(
    tenant_id: str, segment: Segment, clock: Clock = system_clock, cause: str = "requested", *, join: bool = False
) -> dict[str, Any]:
    """Queue a full evaluation of ``segment``; the segment waits for this job (and ignores older ones).

    ``cause`` (created, criteria_changed, requested, refresh) travels with the events the flip announces.
    With ``join`` (an evaluation asked for again), a job still running for the segment's current criteria
    is answered instead of starting another, and of two such requests at once only one starts a job."""
    if join and segment.status == EVALUATING:  # the segment names the job it waits for (being written, maybe)
        running = _job_started_meanwhile(tenant_id, segment.job_id)
        if running is not None and running["status"] == jobs.RUNNING:
            return running
    job_id = new_id("job")
    frozen = snapshot(tenant_id, segment.criteria, segment.references)
    fields = {"job_id": job_id, "status": EVALUATING, "status_reason": None}
    if join:
        if not store.update_fields(tenant_id, segment.id, expected_job_id=segment.job_id, **fields):
            latest = store.get(tenant_id, segment.id)
            started = _job_started_meanwhile(tenant_id, latest.job_id if latest else None)
            if started is not None:
                return started
            store.update_fields(tenant_id, segment.id, **fields)
    else:
        store.update_fields(tenant_id, segment.id, **fields)
    as_of = to_rfc3339(clock())  # every shard evaluates as of the job's start, whenever it runs
    if frozen["index"] is not None:
        chunks = [{"segment_id": segment.id, "index": frozen["index"], "as_of": as_of}]
    else:
        chunks = [
            {"segment_id": segment.id, "shard": shard, "definition": frozen, "as_of": as_of} for shard in range(SHARDS)
        ]
    return jobs.start_job(
        tenant_id,
        EVALUATE,
        chunks,
        total=len(chunks),
        detail={"segment_id": segment.id, "version": segment.version, "cause": cause, "plan": plan_of(frozen)},
        clock=clock,
        job_id=job_id,
    )


JOIN_WAIT_SECONDS = 2.0


def _job_started_meanwhile(tenant_id: str, job_id: str | None) -> dict[str, Any] | None:
    """The job another request named on the segment a moment ago: it writes the job record just after, so
    wait for it a little; None if it never appears (that request stopped) and this one must start its own."""
    deadline = time.monotonic() + JOIN_WAIT_SECONDS
    while job_id:
        try:
            return jobs.job_view(tenant_id, job_id)
        except NotFound:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)
    return None


def _evaluate_chunk(tenant_id: str, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One chunk of a job: members go into the job's generation; publishing decides whether it is used."""
    read_at = to_rfc3339(system_clock() - CLOCK_SKEW)
    segment_id = payload["segment_id"]
    if "index" in payload:
        members = index_members(tenant_id, payload["index"])
        for shard in range(SHARDS):
            store.write_shard_members(tenant_id, segment_id, job_id, shard, members[members % SHARDS == shard])
        counts = {"processed": 1, "contacts": 0, "members": len(members)}
        shards = range(SHARDS)
    else:
        try:
            compiled = compile_snapshot(payload["definition"])
        except BrokenReference as broken:
            raise RuntimeError(f"segment {broken.segment_id} it includes is gone") from broken
        shard = int(payload["shard"])
        as_of = parse_rfc3339(payload["as_of"])
        (result,) = evaluate_shards(tenant_id, compiled, as_of, range(shard, shard + 1), payload["definition"])
        members = [c.ordinal for c in result.members]
        store.write_shard_members(tenant_id, segment_id, job_id, shard, members)
        counts = {"processed": 1, "contacts": len(result.contacts), "members": len(members)}
        shards = range(shard, shard + 1)
    for shard in shards:  # contacts that changed after the read: their real-time update, once more
        for contact_id in membership_store.stamps_changed_since(tenant_id, shard, read_at):
            membership.update_contact(tenant_id, contact_id, {"change": "evaluation", "job_id": job_id})
    return {"counts": counts}


def _publish(tenant_id: str, job: Job) -> None:
    segment_id = job.detail["segment_id"]
    try:
        retired = store.publish(
            tenant_id,
            segment_id,
            job.id,
            {
                "status": READY,
                "status_reason": None,
                "evaluated_version": job.detail["version"],
                "evaluated_at": to_rfc3339(system_clock()),
            },
        )
    except StaleSegment:
        store.delete_generation(tenant_id, segment_id, job.id)
        return
    if retired:
        _announce(tenant_id, segment_id, job, retired)
        store.delete_generation(tenant_id, segment_id, retired)
        store.update_fields(tenant_id, segment_id, retired_generation=None)


def _announce(tenant_id: str, segment_id: str, job: Job, retired: str) -> None:
    """Events for the contacts the flip moved (ids derive from the job: a repeated hook repeats them)."""
    before = store.members(tenant_id, segment_id, retired)
    after = store.members(tenant_id, segment_id, job.id)
    cause = {"change": "evaluation", "reason": job.detail.get("cause", "requested"), "job_id": job.id}
    at = to_rfc3339(system_clock())
    events = [
        transition_event(tenant_id, segment_id, contact_id_for(o), o in after, job.id, cause, at)
        for o in sorted(before ^ after)
    ]
    queues.send_messages(MEMBERSHIP_EVENTS_QUEUE, events)


def _record_failure(tenant_id: str, job: Job) -> None:
    segment = store.get(tenant_id, job.detail["segment_id"])
    if segment is not None and segment.job_id == job.id and segment.status == EVALUATING:
        reason = f"evaluation {job.id} failed: {job.detail.get('failure', 'unknown')}; the previous membership stays"
        store.update_fields(tenant_id, segment.id, status=FAILED, status_reason=reason)
    store.delete_generation(tenant_id, job.detail["segment_id"], job.id)


jobs.register_worker(
    EVALUATE, _evaluate_chunk, on_success=_publish, on_failure=_record_failure, counters=("contacts", "members")
)
