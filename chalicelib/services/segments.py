"""Segments: define, version, preview, evaluate, list members, compare, delete with review.

Rules live in chalicelib/domain/criteria.py (what a criteria may say), chalicelib/domain/engine.py
(what it means) and chalicelib/domain/segments.py (statuses, invalidation and revival); this module
runs the lifecycle on the tenant's ports: saving criteria that change membership starts a full
evaluation of the segment and of every segment that includes it through ``{"segment": …}``.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from chalicelib.domain import segments as rules
from chalicelib.domain.clock import Clock, system_clock, to_rfc3339
from chalicelib.domain.contacts import Contact, contact_id_for
from chalicelib.domain.criteria import Vocabulary, canonical_text, check_criteria
from chalicelib.domain.errors import Conflict, LimitExceeded, NotFound, ValidationFailed
from chalicelib.domain.ids import new_id
from chalicelib.domain.segments import (
    EVALUATING,
    INVALID,
    PreviewRequest,
    Segment,
    SegmentChanges,
    SegmentDraft,
    StaleSegment,
)
from chalicelib.domain.values import whole_number
from chalicelib.services import dependents
from chalicelib.services.contacts import contact_view, list_filters, resolve
from chalicelib.services.context import TenantContext
from chalicelib.services.evaluation import (
    compile_snapshot,
    evaluate_shards,
    index_members,
    plan_of,
    snapshot,
    start_evaluation,
)
from chalicelib.services.paging import page

MAX_OVERLAP = 10
CSV_PAGE_DEFAULT = 5_000
CSV_PAGE_MAX = 10_000


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


def _require(ctx: TenantContext, segment_id: str) -> Segment:
    segment = ctx.ports.segments.get(segment_id) if isinstance(segment_id, str) else None
    if segment is None:
        raise NotFound(f"Segment {segment_id} does not exist.", {"field": "id"})
    return segment


def criteria_vocabulary(ctx: TenantContext) -> Vocabulary:
    """What criteria outside a segment (a trigger's conditions) may refer to."""
    return ctx.vocabulary()


# --- lifecycle -----------------------------------------------------------------------------------------


def create_segment(ctx: TenantContext, draft: SegmentDraft, clock: Clock = system_clock) -> dict[str, Any]:
    checked = check_criteria(draft.criteria, ctx.vocabulary())
    now = to_rfc3339(clock())
    segment = Segment(
        id=new_id("segment"),
        name=draft.name,
        description=draft.description,
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
    ctx.ports.segments.create(segment)
    ctx.segments_changed()
    start_evaluation(ctx, segment, clock, cause="created")
    return segment_view(_require(ctx, segment.id))


def get_segment(ctx: TenantContext, segment_id: str) -> dict[str, Any]:
    return segment_view(_require(ctx, segment_id))


def list_segments(ctx: TenantContext, limit_: int, cursor: str | None) -> dict[str, Any]:
    return page(f"segments:{ctx.tenant_id}", cursor, lambda start: ctx.ports.segments.page(limit_, start), segment_view)


def update_segment(
    ctx: TenantContext, segment_id: str, changes: SegmentChanges, clock: Clock = system_clock
) -> dict[str, Any]:
    """Change name, description or criteria; any change is a new version, criteria changes re-evaluate."""
    before = _require(ctx, segment_id)
    after = replace(
        before,
        name=changes.name if "name" in changes.given else before.name,
        description=changes.description if "description" in changes.given else before.description,
    )
    if changes.criteria is not None:
        checked = check_criteria(changes.criteria, ctx.vocabulary(segment_id=before.id))
        after = replace(
            after,
            criteria=checked.criteria,
            tags=checked.tags,
            groups=checked.groups,
            references=checked.segments,
            time_dependent=checked.time_dependent,
        )
    criteria_changed = canonical_text(after.criteria) != canonical_text(before.criteria)
    saved = rules.edited(before, after, criteria_given=changes.criteria is not None, now=to_rfc3339(clock()))
    if saved is None:
        return segment_view(before)
    try:
        ctx.ports.segments.save(before, saved)
    except StaleSegment:
        raise Conflict(f"Segment {segment_id} changed while this edit was made; read it again.") from None
    ctx.segments_changed()
    if criteria_changed or saved.status != before.status:
        _reevaluate(ctx, saved, clock)
    return segment_view(_require(ctx, segment_id))


def _reevaluate(ctx: TenantContext, changed: Segment, clock: Clock) -> None:
    """Evaluate ``changed`` and every segment that includes it; revive those invalid only because of it."""
    start_evaluation(ctx, changed, clock, cause="criteria_changed")
    revived = {changed.id}
    for referrer in rules.referrers(ctx.segments, changed.id):  # nearest first
        if referrer.status != INVALID:
            start_evaluation(ctx, referrer, clock, cause="criteria_changed")
            continue
        if not rules.revivable_by(referrer, revived):
            continue
        try:
            check_criteria(referrer.criteria, ctx.vocabulary(referrer.id))
        except ValidationFailed:
            continue
        ctx.ports.segments.update_fields(referrer.id, status=EVALUATING, status_reason=None, invalid_because=None)
        start_evaluation(ctx, referrer, clock, cause="criteria_changed")
        revived.add(referrer.id)


def refresh_time_dependent(ctx: TenantContext, segment_ids: set[str], clock: Clock = system_clock) -> int:
    """Re-evaluate the tenant's ready segments among ``segment_ids`` (those time alone changes), and the
    segments that include one, once their last evaluation is an hour old; return how many started."""
    now = clock()
    chosen: dict[str, Segment] = {}
    for segment in ctx.segments:
        if segment.id in segment_ids:
            chosen[segment.id] = segment
            chosen.update((r.id, r) for r in rules.referrers(ctx.segments, segment.id))
    due = [segment for segment in chosen.values() if rules.due_for_refresh(segment, now)]
    for segment in due:
        start_evaluation(ctx, segment, clock, cause="refresh")
    return len(due)


def evaluate(ctx: TenantContext, segment_id: str, clock: Clock = system_clock) -> dict[str, Any]:
    segment = _require(ctx, segment_id)
    if segment.status == INVALID:
        raise Conflict(
            f"Segment {segment_id} is invalid ({segment.status_reason}); fix its criteria first.",
            {"field": "criteria", "status_reason": segment.status_reason},
        )
    return start_evaluation(ctx, segment, clock, join=True)


def versions(ctx: TenantContext, segment_id: str, limit_: int, cursor: str | None) -> dict[str, Any]:
    _require(ctx, segment_id)
    return page(
        f"segment-versions:{ctx.tenant_id}:{segment_id}",
        cursor,
        lambda start: ctx.ports.segments.versions(segment_id, limit_, start),
    )


# --- preview and members -------------------------------------------------------------------------------


def preview(ctx: TenantContext, request: PreviewRequest, clock: Clock = system_clock) -> dict[str, Any]:
    """Count and sample unsaved criteria over every contact (the click-to-segment path).

    Tag-only criteria are answered from the tag index; others evaluate every shard's image (only the
    candidates the tag index leaves, when they are few). The sample is drawn from the members in ordinal
    order with a generator seeded by the criteria, so the same criteria shows the same sample."""
    now = clock()
    criteria, frozen, ordinals, seen = _members_of(ctx, request.criteria, now)
    wanted = request.sample_size
    chooser = random.Random(canonical_text(criteria))  # the same criteria shows the same sample
    count = len(ordinals)
    chosen = sorted(chooser.sample(range(count), min(wanted, count)))  # every member equally likely
    ids = [contact_id_for(int(ordinals[i])) for i in chosen]
    sample = list(ctx.ports.contacts.get_contacts(ids).values()) if ids else []
    return {
        "count": count,
        "contacts_evaluated": seen,
        "plan": plan_of(frozen),
        "sample": [contact_view(c) for c in sorted(sample, key=lambda c: c.ordinal)],
        "criteria": criteria,
        "evaluated_at": to_rfc3339(now),
    }


def _members_of(
    ctx: TenantContext, criteria: Any, now: datetime
) -> tuple[dict[str, Any], dict[str, Any], npt.NDArray[np.int64], int]:
    """Checked criteria, their frozen snapshot, the ordinals of every contact matching them at ``now``, and
    how many contacts were evaluated: from the tag index when the criteria are tags only, else every shard's
    image (only the candidates the tag index leaves, when they are few)."""
    checked = check_criteria(criteria, ctx.vocabulary())
    frozen = snapshot(ctx, checked.criteria, checked.segments)
    if frozen["index"] is not None:
        return checked.criteria, frozen, index_members(ctx, frozen["index"]), 0
    results = list(evaluate_shards(ctx, compile_snapshot(frozen), now, frozen=frozen))
    ordinals = np.concatenate([r.members for r in results]) if results else np.empty(0, np.int64)
    return checked.criteria, frozen, ordinals, sum(len(r.ordinals) for r in results)


SEARCH_FIELDS = ("email", "first_name", "last_name", "external_id")
MAX_SEARCH_TEXT = 200


def search_criteria(text: str) -> dict[str, Any]:
    """Contacts whose email, first or last name or external id starts with ``text`` (case ignored), or whose
    first and last names start with its first word and the rest."""
    choices: list[dict[str, Any]] = [{"attr": name, "op": "starts_with", "value": text} for name in SEARCH_FIELDS]
    first, _, rest = text.partition(" ")
    if rest.strip():
        choices.append(
            {
                "all": [
                    {"attr": "first_name", "op": "starts_with", "value": first},
                    {"attr": "last_name", "op": "starts_with", "value": rest.strip()},
                ]
            }
        )
    return {"any": choices}


def search_contacts(
    ctx: TenantContext, query: dict[str, str], limit: int, cursor: str | None, clock: Clock = system_clock
) -> dict[str, Any]:
    """``GET /contacts?q=``: a prefix search (and the tag and group filters), in ordinal order, evaluated
    like a preview over the shards' images; a page resumes after the last ordinal it showed."""
    text = (query.get("q") or "").strip()
    if not 1 <= len(text) <= MAX_SEARCH_TEXT:
        raise ValidationFailed("q", f"q: the start of an email, name or external id (1-{MAX_SEARCH_TEXT} characters).")
    tag, group = list_filters(ctx, query)
    criteria: dict[str, Any] = {
        "all": [search_criteria(text), *([{"tag": tag}] if tag else []), *([{"group": group}] if group else [])]
    }
    ordinals = np.sort(_members_of(ctx, criteria, clock())[2])

    def fetch(position: dict[str, Any] | None) -> tuple[list[Contact], dict[str, Any] | None]:
        after = int((position or {}).get("after", -1))
        chosen = ordinals[np.searchsorted(ordinals, after, side="right") :][: limit + 1]
        ids = [contact_id_for(int(o)) for o in chosen[:limit]]
        found = ctx.ports.contacts.get_contacts(ids) if ids else {}
        contacts = [found[contact_id] for contact_id in ids if contact_id in found]
        return contacts, {"after": int(chosen[limit - 1])} if len(chosen) > limit else None

    return page(f"contacts:{ctx.tenant_id}:search:{canonical_text(criteria)}", cursor, fetch, contact_view)


def contact_segments(ctx: TenantContext, reference: str) -> dict[str, Any]:
    """The segments whose stored members include the contact (each one's latest finished evaluation, kept
    current by real-time membership): what ``GET /segments/{id}/members`` would list it in."""
    contact = resolve(ctx, reference)
    published = [s for s in ctx.segments if s.generation]
    places = [(s.id, s.generation or "") for s in published]
    found = ctx.ports.membership.memberships([contact.ordinal], places).get(contact.ordinal, {}) if places else {}
    return {
        "items": [
            {"id": s.id, "name": s.name, "member_count": s.member_count}
            for s in published
            if found.get((s.id, s.generation or ""))
        ]
    }


def size_history(
    ctx: TenantContext, segment_id: str, days_text: str | None, clock: Clock = system_clock
) -> dict[str, Any]:
    """``GET /segments/{id}/history?days=N``: the last N days (30 unless given, at most 400), oldest first
    (services/segment_history.py records them)."""
    days = whole_number(days_text, "days", 1, rules.HISTORY_KEPT_DAYS, default=rules.HISTORY_DAYS_DEFAULT)
    segment = _require(ctx, segment_id)
    points = ctx.ports.segments.size_points(segment.id)
    return {"items": rules.history_series(points, clock().date(), days, segment.member_count)}


def _published(ctx: TenantContext, segment_id: str) -> Segment:
    segment = _require(ctx, segment_id)
    if segment.generation is None:
        raise Conflict(
            f"Segment {segment_id} has not finished its first evaluation (job {segment.job_id}).",
            {"field": "id", "status": segment.status, "job_id": segment.job_id},
        )
    return segment


def _member_contacts(
    ctx: TenantContext, segment: Segment, limit_: int, position: dict[str, Any] | None
) -> tuple[list[Contact], dict[str, Any] | None]:
    assert segment.generation is not None  # _published
    ordinals, last = ctx.ports.segments.page_of_members(segment.id, segment.generation, limit_, position)
    ids = [contact_id_for(o) for o in ordinals]
    found = ctx.ports.contacts.get_contacts(ids)
    return [found[i] for i in ids if i in found], last  # a contact deleted since the evaluation is skipped


def members(ctx: TenantContext, segment_id: str, limit_: int, cursor: str | None) -> dict[str, Any]:
    segment = _published(ctx, segment_id)
    return page(
        f"segment-members:{ctx.tenant_id}:{segment_id}",
        cursor,
        lambda position: _member_contacts(ctx, segment, limit_, position),
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


def members_csv(ctx: TenantContext, segment_id: str, size: int, cursor: str | None) -> tuple[str, str | None]:
    """One page of members as CSV (the import's columns, plus id) and the cursor of the next page."""
    segment = _published(ctx, segment_id)
    attributes = sorted(ctx.attribute_types)
    result = page(
        f"segment-members:{ctx.tenant_id}:{segment_id}",
        cursor,
        lambda position: _member_contacts(ctx, segment, size, position),
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


def overlap(ctx: TenantContext, ids_text: str | None) -> dict[str, Any]:
    """Pairwise overlap of 2-10 evaluated segments: both, only each, and the Jaccard index."""
    ids = [part.strip() for part in (ids_text or "").split(",") if part.strip()]
    if not 2 <= len(ids) <= MAX_OVERLAP or len(set(ids)) != len(ids):
        raise ValidationFailed("ids", f"ids lists 2 to {MAX_OVERLAP} different segment ids, comma-separated.")
    found = {segment_id: ctx.ports.segments.get(segment_id) for segment_id in ids}
    unknown = [segment_id for segment_id, segment in found.items() if segment is None]
    if unknown:
        raise ValidationFailed("ids", f"Unknown segment(s): {', '.join(unknown)}.", unknown=unknown)
    segments = [segment for segment in found.values() if segment is not None]
    pending = [s.id for s in segments if s.generation is None]
    if pending:
        raise Conflict(f"Segment(s) {', '.join(pending)} have not finished their first evaluation.", {"ids": pending})
    sets = {
        s.id: np.fromiter(sorted(ctx.ports.segments.members(s.id, s.generation or "")), dtype=np.int64)
        for s in segments
    }
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


def check_targets(ctx: TenantContext, field: str, ids: list[str], *, owner: str, minimum: int = 1) -> list[str]:
    """The segment ids a campaign, trigger, announcement or challenge targets: at most the tenant's limit
    (``segments_per_{owner}``), at least ``minimum``, no repeats, each an existing segment of this tenant."""
    most = ctx.limit(f"segments_per_{owner}")
    if len(ids) > most:
        raise LimitExceeded(
            field, f"A {owner} takes at most {most} {field.replace('_', ' ')} (tenant limit).", limit=most
        )
    if len(ids) < minimum:
        raise ValidationFailed(field, f"A {owner} targets at least {minimum} segment{'s' if minimum > 1 else ''}.")
    if len(set(ids)) != len(ids):
        raise ValidationFailed(field, f"{field} lists a segment twice.")
    for index, segment_id in enumerate(ids):
        if ctx.ports.segments.get(segment_id) is None:
            raise ValidationFailed(f"{field}[{index}]", f"Segment {segment_id} does not exist.")
    return ids


# --- dependents and deletion ---------------------------------------------------------------------------


def dependents_of(ctx: TenantContext, segment_id: str) -> dict[str, Any]:
    segment = _require(ctx, segment_id)
    return {"items": dependents.find("segment", ctx, segment.id)}


def delete_segment(ctx: TenantContext, segment_id: str, confirm: bool) -> None:
    """Delete after review: always asks for ``?confirm=true``, listing what depends on the segment."""
    segment = _require(ctx, segment_id)
    dependents.review("segment", ctx, segment.id, f"segment {segment.name!r} (its tags stay)", confirm,
        impact={"member_count": segment.member_count}, always=True,
    )  # fmt: skip
    ctx.ports.segments.delete(segment.id)
    ctx.segments_changed()
    dependents.release("segment", ctx, segment.id, f"segment {segment.name!r} ({segment.id}) was deleted")


def _summary(segment: Segment) -> dict[str, Any]:
    return {"type": "segment", "id": segment.id, "name": segment.name}


def _segments_using(kind: str) -> dependents.Finder:
    def finder(ctx: TenantContext, key: str) -> list[dict[str, Any]]:
        return [_summary(s) for s in ctx.segments if s.uses(kind, key)]

    return finder


def _invalidate_users(kind: str) -> dependents.Release:
    """``key`` is gone: the segments naming it become invalid, and so do the segments including them."""

    def release(ctx: TenantContext, key: str, reason: str) -> None:
        for segment in [s for s in ctx.segments if s.uses(kind, key)]:
            for segment_id, fields in rules.invalidations(ctx.segments, segment, reason, f"{kind}:{key}"):
                ctx.ports.segments.update_fields(segment_id, **fields)
        ctx.segments_changed()

    return release


DEPENDENTS: list[dependents.Registration] = [
    (kind, _segments_using(kind), _invalidate_users(kind)) for kind in ("tag", "group", "segment")
]
"""What segments depend on (registered by chalicelib/composition.py)."""
