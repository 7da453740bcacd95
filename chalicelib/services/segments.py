"""Segments: define, version, preview, evaluate, list members, compare, delete with review.

Rules live in chalicelib/domain/criteria.py (what a criteria may say) and
chalicelib/domain/engine.py (what it means); this module keeps the lifecycle:

- Saving criteria that change membership starts a full evaluation of the
  segment and of every segment that includes it through ``{"segment": …}``.
- A segment is ``invalid`` (with a reason) when something it uses is deleted:
  a tag, a group, or a segment it includes. It keeps serving its last
  membership, is not re-evaluated, and cannot be included in other segments
  until its criteria are fixed; fixing a segment revives the segments that were
  invalid only because of it.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np

from chalicelib.domain.clock import Clock, stored_moment, system_clock, to_rfc3339
from chalicelib.domain.contacts import contact_id_for
from chalicelib.domain.criteria import Vocabulary, canonical_text, check_criteria
from chalicelib.domain.errors import Conflict, LimitExceeded, NotFound, ValidationFailed
from chalicelib.domain.ids import new_id
from chalicelib.domain.segments import Segment, StaleSegment
from chalicelib.domain.settings import limit
from chalicelib.domain.validation import validate
from chalicelib.domain.values import whole_number
from chalicelib.services import dependents
from chalicelib.services.contacts import contact_view
from chalicelib.services.evaluation import (
    EVALUATING,
    INVALID,
    READY,
    compile_snapshot,
    evaluate_shards,
    index_members,
    plan_of,
    snapshot,
    start_evaluation,
)
from chalicelib.services.paging import page
from chalicelib.services.principal import Principal
from chalicelib.storage import catalog
from chalicelib.storage import contacts as contact_store
from chalicelib.storage import segments as store

MAX_NAME = 200
MAX_DESCRIPTION = 2_000
MAX_SAMPLE = 50
MAX_OVERLAP = 10
CSV_PAGE_DEFAULT = 5_000
CSV_PAGE_MAX = 10_000

CRITERIA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A criteria node (API.md, Segments): all/any/not, tag, group, segment, attr, event.",
}
CREATE_SEGMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "criteria"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
        "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION},
        "criteria": CRITERIA_SCHEMA,
    },
}
PATCH_SEGMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": CREATE_SEGMENT_SCHEMA["properties"],
}
PREVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["criteria"],
    "properties": {
        "criteria": CRITERIA_SCHEMA,
        "sample_size": {"type": "integer", "minimum": 0, "maximum": MAX_SAMPLE, "default": 10},
    },
}


# --- views and look-ups --------------------------------------------------------------------------------


def segment_view(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "name": segment.name,
        "description": segment.description,
        "criteria": segment.criteria,
        "member_count": segment.member_count,
        "status": segment.status,
        "status_reason": segment.status_reason,
        "version": segment.version,
        "evaluated_version": segment.evaluated_version,
        "evaluated_at": segment.evaluated_at,
        "job_id": segment.job_id,
        "tags": sorted(segment.tags),
        "segments": sorted(segment.references),
        "time_dependent": segment.time_dependent,
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
    }


def _require(tenant_id: str, segment_id: str) -> Segment:
    segment = store.get(tenant_id, segment_id) if isinstance(segment_id, str) else None
    if segment is None:
        raise NotFound(f"Segment {segment_id} does not exist.", {"field": "id"})
    return segment


def _vocabulary(principal: Principal, segments: list[Segment], segment_id: str | None = None) -> Vocabulary:
    tenant_id = principal.tenant_id
    return Vocabulary(
        tags=frozenset(catalog.usable_tag_names(tenant_id)),
        groups=frozenset(catalog.usable_group_ids(tenant_id)),
        attributes=catalog.attribute_types(tenant_id),
        segments={s.id: s.references for s in segments},
        invalid_segments={s.id: s.status_reason or "invalid" for s in segments if s.status == INVALID},
        tag_limit=limit(principal.settings, "tags_per_segment"),
        segment_id=segment_id,
    )


def criteria_vocabulary(principal: Principal) -> Vocabulary:
    """What criteria outside a segment (a trigger's conditions) may refer to."""
    return _vocabulary(principal, store.all_segments(principal.tenant_id))


def _referrers(segments: Iterable[Segment], segment_id: str) -> list[Segment]:
    """Segments that include ``segment_id``, directly or through others (each once)."""
    by_reference: dict[str, list[Segment]] = {}
    for segment in segments:
        for reference in segment.references:
            by_reference.setdefault(reference, []).append(segment)
    found: dict[str, Segment] = {}
    queue = [segment_id]
    while queue:
        for referrer in by_reference.get(queue.pop(), ()):
            if referrer.id not in found:
                found[referrer.id] = referrer
                queue.append(referrer.id)
    return list(found.values())


# --- lifecycle -----------------------------------------------------------------------------------------


def _name(value: str) -> str:
    name = value.strip()
    if not name:
        raise ValidationFailed("name", "name must not be blank.")
    return name


def create_segment(principal: Principal, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    validate(body, CREATE_SEGMENT_SCHEMA)
    tenant_id = principal.tenant_id
    checked = check_criteria(body["criteria"], _vocabulary(principal, store.all_segments(tenant_id)))
    now = to_rfc3339(clock())
    segment = Segment(
        id=new_id("segment"),
        name=_name(body["name"]),
        description=body.get("description"),
        criteria=checked.criteria,
        tags=checked.tags,
        groups=checked.groups,
        references=checked.segments,
        time_dependent=checked.time_dependent,
        version=1,
        status=EVALUATING,
        created_at=now,
        updated_at=now,
    )
    store.create(tenant_id, segment)
    start_evaluation(tenant_id, segment, clock, cause="created")
    return segment_view(_require(tenant_id, segment.id))


def get_segment(principal: Principal, segment_id: str) -> dict[str, Any]:
    return segment_view(_require(principal.tenant_id, segment_id))


def list_segments(principal: Principal, limit_: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = principal.tenant_id
    return page(f"segments:{tenant_id}", cursor, lambda start: store.page(tenant_id, limit_, start), segment_view)


def update_segment(principal: Principal, segment_id: str, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    """Change name, description or criteria; any change is a new version, criteria changes re-evaluate."""
    validate(body, PATCH_SEGMENT_SCHEMA)
    tenant_id = principal.tenant_id
    segments = store.all_segments(tenant_id)
    before = _require(tenant_id, segment_id)
    after = replace(
        before,
        name=_name(body["name"]) if "name" in body else before.name,
        description=body.get("description", before.description),
    )
    if "criteria" in body:
        checked = check_criteria(body["criteria"], _vocabulary(principal, segments, segment_id=before.id))
        after = replace(
            after,
            criteria=checked.criteria,
            tags=checked.tags,
            groups=checked.groups,
            references=checked.segments,
            time_dependent=checked.time_dependent,
        )
    criteria_changed = canonical_text(after.criteria) != canonical_text(before.criteria)
    revived = before.status == INVALID and "criteria" in body
    if after == before and not revived:
        return segment_view(before)
    after = replace(after, version=before.version + 1, updated_at=to_rfc3339(clock()))
    if revived:
        after = replace(after, status=EVALUATING, status_reason=None, invalid_because=None)
    try:
        store.save(tenant_id, before, after)
    except StaleSegment:
        raise Conflict(f"Segment {segment_id} changed while this edit was made; read it again.") from None
    if criteria_changed or revived:
        _reevaluate(principal, after, clock)
    return segment_view(_require(tenant_id, segment_id))


def _reevaluate(principal: Principal, changed: Segment, clock: Clock) -> None:
    """Evaluate ``changed`` and every segment that includes it; revive those invalid only because of it."""
    tenant_id = principal.tenant_id
    start_evaluation(tenant_id, changed, clock, cause="criteria_changed")
    revived = {changed.id}
    for referrer in _referrers(store.all_segments(tenant_id), changed.id):  # nearest first
        if referrer.status != INVALID:
            start_evaluation(tenant_id, referrer, clock, cause="criteria_changed")
            continue
        if (referrer.invalid_because or "").removeprefix("segment:") not in revived:
            continue
        try:
            check_criteria(referrer.criteria, _vocabulary(principal, store.all_segments(tenant_id), referrer.id))
        except ValidationFailed:
            continue
        store.update_fields(tenant_id, referrer.id, status=EVALUATING, status_reason=None, invalid_because=None)
        start_evaluation(tenant_id, referrer, clock, cause="criteria_changed")
        revived.add(referrer.id)


REFRESH_EVERY = timedelta(hours=1)
"""How often time-dependent segments are re-evaluated (the schedule's rate, in handlers/schedules.py)."""
_REFRESH_SLACK = timedelta(minutes=5)


def refresh_time_dependent(clock: Clock = system_clock, registered: Iterable[tuple[str, str]] | None = None) -> int:
    """Re-evaluate every ready segment that time alone changes, and the segments that include one,
    once their last evaluation is an hour old; return how many evaluations started.

    ``registered`` (tenant, segment) pairs default to every time-dependent segment."""
    now = clock()
    due: dict[str, set[str]] = {}
    for tenant_id, segment_id in store.time_dependent_segments() if registered is None else registered:
        due.setdefault(tenant_id, set()).add(segment_id)
    started = 0
    for tenant_id, segment_ids in due.items():
        segments = store.all_segments(tenant_id)
        chosen: dict[str, Segment] = {}
        for segment in segments:
            if segment.id in segment_ids:
                chosen[segment.id] = segment
                chosen.update((r.id, r) for r in _referrers(segments, segment.id))
        for segment in chosen.values():
            last = stored_moment(segment.evaluated_at)
            if segment.status == READY and (last is None or now - last >= REFRESH_EVERY - _REFRESH_SLACK):
                start_evaluation(tenant_id, segment, clock, cause="refresh")
                started += 1
    return started


def evaluate(principal: Principal, segment_id: str, clock: Clock = system_clock) -> dict[str, Any]:
    segment = _require(principal.tenant_id, segment_id)
    if segment.status == INVALID:
        raise Conflict(
            f"Segment {segment_id} is invalid ({segment.status_reason}); fix its criteria first.",
            {"field": "criteria", "status_reason": segment.status_reason},
        )
    return start_evaluation(principal.tenant_id, segment, clock, join=True)


def versions(principal: Principal, segment_id: str, limit_: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = principal.tenant_id
    _require(tenant_id, segment_id)
    return page(
        f"segment-versions:{tenant_id}:{segment_id}",
        cursor,
        lambda start: store.versions(tenant_id, segment_id, limit_, start),
    )


# --- preview and members -------------------------------------------------------------------------------


def preview(principal: Principal, body: Any, clock: Clock = system_clock) -> dict[str, Any]:
    """Count and sample unsaved criteria over every contact (the click-to-segment path).

    Tag-only criteria are answered from the tag index; others read the shards
    (only the candidates the tag index leaves, when they are few)."""
    validate(body, PREVIEW_SCHEMA)
    tenant_id = principal.tenant_id
    segments = store.all_segments(tenant_id)
    checked = check_criteria(body["criteria"], _vocabulary(principal, segments))
    frozen = snapshot(tenant_id, checked.criteria, checked.segments, segments)
    compiled = compile_snapshot(frozen)
    wanted = body.get("sample_size", 10)
    chooser = random.Random(canonical_text(checked.criteria))  # the same criteria shows the same sample
    now = clock()
    if frozen["index"] is not None:
        ordinals = index_members(tenant_id, frozen["index"])
        chosen = sorted(chooser.sample(range(len(ordinals)), min(wanted, len(ordinals))))
        ids = [contact_id_for(int(ordinals[i])) for i in chosen]
        sample = list(contact_store.get_contacts(tenant_id, ids).values()) if ids else []
        count, seen = len(ordinals), 0
    else:
        sample, count, seen = [], 0, 0
        for result in evaluate_shards(tenant_id, compiled, now, frozen=frozen):
            seen += len(result.contacts)
            for contact in result.members:
                count += 1
                if len(sample) < wanted:
                    sample.append(contact)
                elif wanted and (slot := chooser.randrange(count)) < wanted:
                    sample[slot] = contact  # reservoir sampling: every member equally likely
    return {
        "count": count,
        "contacts_evaluated": seen,
        "plan": plan_of(frozen),
        "sample": [contact_view(c) for c in sorted(sample, key=lambda c: c.ordinal)],
        "criteria": checked.criteria,
        "evaluated_at": to_rfc3339(now),
    }


def _published(tenant_id: str, segment_id: str) -> Segment:
    segment = _require(tenant_id, segment_id)
    if segment.generation is None:
        raise Conflict(
            f"Segment {segment_id} has not finished its first evaluation (job {segment.job_id}).",
            {"field": "id", "status": segment.status, "job_id": segment.job_id},
        )
    return segment


def _member_contacts(tenant_id: str, segment: Segment, limit_: int, position: dict[str, Any] | None):
    ordinals, last = store.page_of_members(tenant_id, segment.id, segment.generation, limit_, position)
    ids = [contact_id_for(o) for o in ordinals]
    found = contact_store.get_contacts(tenant_id, ids)
    return [found[i] for i in ids if i in found], last  # a contact deleted since the evaluation is skipped


def members(principal: Principal, segment_id: str, limit_: int, cursor: str | None) -> dict[str, Any]:
    tenant_id = principal.tenant_id
    segment = _published(tenant_id, segment_id)
    return page(
        f"segment-members:{tenant_id}:{segment_id}",
        cursor,
        lambda position: _member_contacts(tenant_id, segment, limit_, position),
        contact_view,
    )


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(_cell(item) for item in value)
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA_START) else text


def members_csv(principal: Principal, segment_id: str, query: dict[str, str]) -> tuple[str, str | None]:
    """One page of members as CSV (the import's columns, plus id) and the cursor of the next page."""
    tenant_id = principal.tenant_id
    segment = _published(tenant_id, segment_id)
    size = whole_number(query.get("limit"), "limit", 1, CSV_PAGE_MAX, default=CSV_PAGE_DEFAULT)
    attributes = sorted(catalog.attribute_types(tenant_id))
    result = page(
        f"segment-members:{tenant_id}:{segment_id}",
        query.get("cursor"),
        lambda position: _member_contacts(tenant_id, segment, size, position),
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        ["id", "external_id", "email", "first_name", "last_name", "group", "tags"]
        + [f"attributes.{name}" for name in attributes]
    )
    for contact in result["items"]:
        writer.writerow(
            [
                _cell(value)
                for value in (
                    contact.id,
                    contact.external_id,
                    contact.email,
                    contact.first_name,
                    contact.last_name,
                    contact.group,
                    sorted(contact.tags),
                    *(contact.attributes.get(name) for name in attributes),
                )
            ]
        )
    return out.getvalue(), result["next_cursor"]


def overlap(principal: Principal, ids_text: str | None) -> dict[str, Any]:
    """Pairwise overlap of 2-10 evaluated segments: both, only each, and the Jaccard index."""
    tenant_id = principal.tenant_id
    ids = [part.strip() for part in (ids_text or "").split(",") if part.strip()]
    if not 2 <= len(ids) <= MAX_OVERLAP or len(set(ids)) != len(ids):
        raise ValidationFailed("ids", f"ids lists 2 to {MAX_OVERLAP} different segment ids, comma-separated.")
    segments = [store.get(tenant_id, segment_id) for segment_id in ids]
    unknown = [segment_id for segment_id, found in zip(ids, segments, strict=True) if found is None]
    if unknown:
        raise ValidationFailed("ids", f"Unknown segment(s): {', '.join(unknown)}.", unknown=unknown)
    pending = [s.id for s in segments if s.generation is None]
    if pending:
        raise Conflict(f"Segment(s) {', '.join(pending)} have not finished their first evaluation.", {"ids": pending})
    sets = {s.id: np.fromiter(sorted(store.members(tenant_id, s.id, s.generation)), dtype=np.int64) for s in segments}
    pairs = []
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            both = len(np.intersect1d(sets[a], sets[b], assume_unique=True))
            union = len(sets[a]) + len(sets[b]) - both
            pairs.append(
                {
                    "a": a,
                    "b": b,
                    "both": both,
                    "only_a": len(sets[a]) - both,
                    "only_b": len(sets[b]) - both,
                    "jaccard": round(both / union, 6) if union else 0.0,
                }
            )
    return {
        "segments": [{"id": s.id, "name": s.name, "member_count": len(sets[s.id])} for s in segments],
        "pairs": pairs,
    }


# --- segments other features target ---------------------------------------------------------------------


def check_targets(principal: Principal, field: str, ids: list[str], *, owner: str, minimum: int = 1) -> list[str]:
    """The segment ids a campaign, trigger, announcement or challenge targets: at most the tenant's limit
    (``segments_per_{owner}``), at least ``minimum``, no repeats, each an existing segment of this tenant."""
    most = limit(principal.settings, f"segments_per_{owner}")
    if len(ids) > most:
        raise LimitExceeded(
            field, f"A {owner} takes at most {most} {field.replace('_', ' ')} (tenant limit).", limit=most
        )
    if len(ids) < minimum:
        raise ValidationFailed(field, f"A {owner} targets at least {minimum} segment{'s' if minimum > 1 else ''}.")
    if len(set(ids)) != len(ids):
        raise ValidationFailed(field, f"{field} lists a segment twice.")
    for index, segment_id in enumerate(ids):
        if store.get(principal.tenant_id, segment_id) is None:
            raise ValidationFailed(f"{field}[{index}]", f"Segment {segment_id} does not exist.")
    return ids


# --- dependents and deletion ---------------------------------------------------------------------------


def dependents_of(principal: Principal, segment_id: str) -> dict[str, Any]:
    segment = _require(principal.tenant_id, segment_id)
    return {"items": dependents.find("segment", principal.tenant_id, segment.id)}


def delete_segment(principal: Principal, segment_id: str, confirm: bool) -> None:
    """Delete after review: always asks for ``?confirm=true``, listing what depends on the segment."""
    tenant_id = principal.tenant_id
    segment = _require(tenant_id, segment_id)
    dependents.review(
        "segment", tenant_id, segment.id, f"segment {segment.name!r} (its tags stay)", confirm,
        impact={"member_count": segment.member_count}, always=True,
    )  # fmt: skip
    store.delete(tenant_id, segment.id)
    dependents.release("segment", tenant_id, segment.id, f"segment {segment.name!r} ({segment.id}) was deleted")


def _summary(segment: Segment) -> dict[str, Any]:
    return {"type": "segment", "id": segment.id, "name": segment.name}


def _segments_using(kind: str):
    def finder(tenant_id: str, key: str) -> list[dict[str, Any]]:
        return [
            _summary(s)
            for s in store.all_segments(tenant_id)
            if key in {"tag": s.tags, "group": s.groups, "segment": s.references}[kind]
        ]

    return finder


def _invalidate_users(kind: str):
    def release(tenant_id: str, key: str, reason: str) -> None:
        segments = store.all_segments(tenant_id)
        for segment in segments:
            if key in {"tag": segment.tags, "group": segment.groups, "segment": segment.references}[kind]:
                _invalidate(tenant_id, segments, segment, reason, f"{kind}:{key}")

    return release


def _invalidate(tenant_id: str, segments: list[Segment], segment: Segment, reason: str, because: str) -> None:
    """Mark a segment invalid, and the segments that include it (saying which included segment is the cause)."""
    store.update_fields(
        tenant_id, segment.id, status=INVALID, status_reason=reason, invalid_because=because, job_id=None
    )
    referrers = _referrers(segments, segment.id)
    broken = {segment.id} | {r.id for r in referrers}
    for referrer in referrers:
        cause = min(referrer.references & broken)
        store.update_fields(
            tenant_id,
            referrer.id,
            status=INVALID,
            status_reason=f"it includes segment {cause}, which is invalid: {reason}",
            invalid_because=f"segment:{cause}",
            job_id=None,
        )


for _kind in ("tag", "group", "segment"):
    dependents.register(_kind, _segments_using(_kind), _invalidate_users(_kind))
