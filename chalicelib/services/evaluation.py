"""Evaluating segments: the engine wired to storage, and the full-evaluation job.

A full evaluation is a job. Criteria made only of tags (domain/planner.py) are
one chunk: set algebra over the tag index, no contact read. Any other criteria
get one chunk (one SQS message) per contact shard: the shard's worker reads the
shard's contacts and events as one image (services/shards.py: its snapshot patched
with the contacts written since), or, when the tag index narrows the candidates to
a small part of the shard, just those contacts; evaluates the
compiled criteria over them as columns; and writes that shard's members into a
new membership *generation*. When every chunk is done the segment flips to the
new generation (storage/segments.py), so readers see the old membership or the
new one, never a mix. A newer evaluation of the same segment supersedes an older
one: the older one's generation is discarded.

A contact that changes while its shard is evaluated is caught twice over: its
real-time update writes the pending generation too (services/membership.py),
and after writing, the worker checks again, in this segment only, every contact
of the shard whose membership stamp moved since the shard was read.

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
import numpy.typing as npt

from chalicelib.domain import planner
from chalicelib.domain.campaigns import Ordinals
from chalicelib.domain.clock import Clock, parse_rfc3339, system_clock, to_rfc3339
from chalicelib.domain.contacts import SHARDS, contact_id_for
from chalicelib.domain.engine import BrokenReference, CompiledCriteria, compile_criteria
from chalicelib.domain.errors import NotFound
from chalicelib.domain.ids import new_id
from chalicelib.domain.jobs import Job
from chalicelib.domain.membership import transition_event
from chalicelib.domain.population import Population
from chalicelib.domain.segments import EVALUATING, READY, Segment, StaleSegment, failure_fields
from chalicelib.domain.shard_image import ImagePopulation
from chalicelib.resources import MEMBERSHIP_EVENTS_QUEUE
from chalicelib.services import jobs, membership, segment_history
from chalicelib.services.context import TenantContext

EVALUATE = "segment_evaluate"
POINT_READ_SHARE = 8
"""A shard reads only its candidates when they are at most 1/8 of its contacts: a point read costs at
least one read unit per contact, a shard query about one per 4 KB (several contacts with their events)."""
CLOCK_SKEW = timedelta(seconds=5)


def snapshot(ctx: TenantContext, criteria: dict[str, Any], references: Iterable[str]) -> dict[str, Any]:
    """Everything evaluating ``criteria`` needs, frozen: the criteria, the criteria of every segment it
    includes (transitively) and the attribute types. A job evaluates one snapshot on every shard, so a
    segment edited meanwhile cannot make shards disagree (the edit starts its own evaluation)."""
    by_id = {s.id: s for s in ctx.segments}
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
        "types": ctx.attribute_types,
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
    ordinals: Ordinals
    """Every contact evaluated."""
    matches: npt.NDArray[np.bool_]

    @property
    def members(self) -> Ordinals:
        return self.ordinals[self.matches]


def index_members(ctx: TenantContext, formula: dict[str, Any]) -> Ordinals:
    """Members of a tag-only formula, from the posting lists alone."""
    return planner.evaluate_index(formula, ctx.ports.contacts.postings(planner.postings_needed(formula)))


def _candidates(ctx: TenantContext, frozen: dict[str, Any]) -> Ordinals | None:
    """Ordinals that can match, when the tag index narrows the criteria to a few (None: read whole shards)."""
    if not frozen.get("narrowing"):
        return None
    candidates = index_members(ctx, frozen["narrowing"])
    everyone = ctx.ports.contacts.count_tag(planner.EVERYONE)
    return candidates if len(candidates) * POINT_READ_SHARE <= everyone else None


def evaluate_shards(
    ctx: TenantContext,
    compiled: CompiledCriteria,
    now: datetime,
    shards: range = range(SHARDS),
    frozen: dict[str, Any] | None = None,
) -> Iterator[ShardResult]:
    """Evaluate shard by shard, each shard's contacts as one image (ctx.shards: a snapshot patched with what
    changed since), in memory only while it is evaluated.

    With the ``frozen`` snapshot, a shard whose candidates the tag index narrows reads only those contacts."""
    candidates = _candidates(ctx, frozen) if frozen else None
    with_events = bool(frozen is None or frozen.get("events"))
    if candidates is None:
        for image in ctx.shards.images(shards, with_events):
            yield ShardResult(image.ordinals, compiled.evaluate(ImagePopulation(image), now))
        return
    for shard in shards:
        ids = [contact_id_for(int(o)) for o in candidates[candidates % SHARDS == shard]]
        population = Population(*ctx.ports.contacts.read_contacts(ids, with_events))
        yield ShardResult(population.ordinals, compiled.evaluate(population, now))


def start_evaluation(
    ctx: TenantContext, segment: Segment, clock: Clock = system_clock, cause: str = "requested", *, join: bool = False
) -> dict[str, Any]:
    """Queue a full evaluation of ``segment``; the segment waits for this job (and ignores older ones).

    ``cause`` (created, criteria_changed, requested, refresh) travels with the events the flip announces.
    With ``join`` (an evaluation asked for again), a job still running for the segment's current criteria
    is answered instead of starting another, and of two such requests at once only one starts a job."""
    if join and segment.status == EVALUATING:  # the segment names the job it waits for (being written, maybe)
        running = _job_started_meanwhile(ctx, segment.job_id)
        if running is not None and running["status"] == jobs.RUNNING:
            return running
    job_id = new_id("job")
    frozen = snapshot(ctx, segment.criteria, segment.references)
    segments = ctx.ports.segments
    fields = {"job_id": job_id, "status": EVALUATING, "status_reason": None}
    if join:
        if not segments.update_fields(segment.id, expected_job_id=segment.job_id, **fields):
            latest = segments.get(segment.id)
            started = _job_started_meanwhile(ctx, latest.job_id if latest else None)
            if started is not None:
                return started
            segments.update_fields(segment.id, **fields)
    else:
        segments.update_fields(segment.id, **fields)
    ctx.segments_changed()
    as_of = to_rfc3339(clock())  # every shard evaluates as of the job's start, whenever it runs
    if frozen["index"] is not None:
        chunks = [{"segment_id": segment.id, "index": frozen["index"], "as_of": as_of}]
    else:
        chunks = [
            {"segment_id": segment.id, "shard": shard, "definition": frozen, "as_of": as_of} for shard in range(SHARDS)
        ]
    return jobs.start_job(
        ctx,
        EVALUATE,
        chunks,
        total=len(chunks),
        detail={"segment_id": segment.id, "version": segment.version, "cause": cause, "plan": plan_of(frozen)},
        clock=clock,
        job_id=job_id,
    )


JOIN_WAIT_SECONDS = 2.0


def _job_started_meanwhile(ctx: TenantContext, job_id: str | None) -> dict[str, Any] | None:
    """The job another request named on the segment a moment ago: it writes the job record just after, so
    wait for it a little; None if it never appears (that request stopped) and this one must start its own."""
    deadline = time.monotonic() + JOIN_WAIT_SECONDS
    while job_id:
        try:
            return jobs.job_view(ctx, job_id)
        except NotFound:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)
    return None


def _evaluate_chunk(ctx: TenantContext, job_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One chunk of a job: members go into the job's generation; publishing decides whether it is used."""
    read_at = to_rfc3339(system_clock() - CLOCK_SKEW)
    segment_id = payload["segment_id"]
    if "index" in payload:
        found = index_members(ctx, payload["index"])
        for shard in range(SHARDS):
            ctx.ports.segments.write_shard_members(segment_id, job_id, shard, found[found % SHARDS == shard])
        counts = {"processed": 1, "contacts": 0, "members": len(found)}
        shards = range(SHARDS)
    else:
        try:
            compiled = compile_snapshot(payload["definition"])
        except BrokenReference as broken:
            raise RuntimeError(f"segment {broken.segment_id} it includes is gone") from broken
        shard = int(payload["shard"])
        as_of = parse_rfc3339(payload["as_of"])
        (result,) = evaluate_shards(ctx, compiled, as_of, range(shard, shard + 1), payload["definition"])
        members = result.members
        ctx.ports.segments.write_shard_members(segment_id, job_id, shard, members)
        counts = {"processed": 1, "contacts": len(result.ordinals), "members": len(members)}
        shards = range(shard, shard + 1)
    for shard in shards:  # contacts that changed after the read: their membership in this segment, once more
        membership.check_again(ctx, ctx.ports.membership.stamps_changed_since(shard, read_at), segment_id, job_id)
    return {"counts": counts}


def _publish(ctx: TenantContext, job: Job) -> None:
    segment_id = job.detail["segment_id"]
    segments = ctx.ports.segments
    try:
        retired = segments.publish(
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
        segments.delete_generation(segment_id, job.id)
        return
    segment_history.record_members(ctx, segment_id)
    if retired:
        _announce(ctx, segment_id, job, retired)
        segments.delete_generation(segment_id, retired)
        segments.update_fields(segment_id, retired_generation=None)


def _announce(ctx: TenantContext, segment_id: str, job: Job, retired: str) -> None:
    """Events for the contacts the flip moved (ids derive from the job: a repeated hook repeats them)."""
    before = ctx.ports.segments.members(segment_id, retired)
    after = ctx.ports.segments.members(segment_id, job.id)
    cause = {"change": "evaluation", "reason": job.detail.get("cause", "requested"), "job_id": job.id}
    at = to_rfc3339(system_clock())
    events = [
        transition_event(ctx.tenant_id, segment_id, contact_id_for(o), o in after, job.id, cause, at)
        for o in sorted(before ^ after)
    ]
    ctx.ports.queues.send(MEMBERSHIP_EVENTS_QUEUE, events)


def _record_failure(ctx: TenantContext, job: Job) -> None:
    segments = ctx.ports.segments
    segment = segments.get(job.detail["segment_id"])
    fields = failure_fields(segment, job.id, job.detail.get("failure", "unknown")) if segment else None
    if segment is not None and fields:
        segments.update_fields(segment.id, **fields)
    segments.delete_generation(job.detail["segment_id"], job.id)


JOB_KINDS = {
    EVALUATE: jobs.JobKind(
        _evaluate_chunk, on_success=_publish, on_failure=_record_failure, counters=("contacts", "members")
    )
}
