"""A segment's size over time: one point per UTC day (members, entered, exited), kept 400 days.

Entered and exited count the ``segment.entered`` / ``segment.exited`` events on the membership-events queue
— real-time moves and evaluation flips alike — each once, however often SQS delivers it, on the day the
transition happened. Members is the segment's count at the day's last counted transition, or after an
evaluation; a day without a point carries the day before's members.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.clock import Clock, stored_moment, system_clock
from chalicelib.domain.errors import NotFound
from chalicelib.domain.membership import ENTERED, EXITED
from chalicelib.domain.segments import HISTORY_DAYS_DEFAULT, HISTORY_KEPT_DAYS, history_series
from chalicelib.domain.values import whole_number
from chalicelib.services.context import TenantContext


def _kept_until(day: datetime) -> int:
    return int((day + timedelta(days=HISTORY_KEPT_DAYS + 1)).timestamp())


def on_membership_event(ctx: TenantContext, event: dict[str, Any], clock: Clock = system_clock) -> bool:
    """Count one transition event on its day (False: already counted, or its segment is gone)."""
    segment = next((s for s in ctx.segments if s.id == event["segment_id"]), None)
    if segment is None or event["type"] not in (ENTERED, EXITED):
        return False
    at = stored_moment(event.get("at")) or clock()
    return ctx.ports.segments.count_transition(
        segment.id, at.date().isoformat(), event["type"] == ENTERED, event["id"], segment.member_count, _kept_until(at)
    )


def record_members(ctx: TenantContext, segment_id: str, clock: Clock = system_clock) -> None:
    """After an evaluation is published: today's members are its count."""
    segment = ctx.ports.segments.get(segment_id)
    if segment is not None and segment.member_count is not None:
        now = clock()
        ctx.ports.segments.record_members(segment_id, now.date().isoformat(), segment.member_count, _kept_until(now))


def history(ctx: TenantContext, segment_id: str, days_text: str | None, clock: Clock = system_clock) -> dict[str, Any]:
    """``GET /segments/{id}/history?days=N``: the last N days (30 unless given, at most 400), oldest first."""
    days = whole_number(days_text, "days", 1, HISTORY_KEPT_DAYS, default=HISTORY_DAYS_DEFAULT)
    segment = ctx.ports.segments.get(segment_id) if isinstance(segment_id, str) else None
    if segment is None:
        raise NotFound(f"Segment {segment_id} does not exist.", {"field": "id"})
    points = ctx.ports.segments.size_points(segment.id)
    return {"items": history_series(points, clock().date(), days, segment.member_count)}
