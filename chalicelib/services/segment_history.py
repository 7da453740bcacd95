"""A segment's size over time: one point per UTC day (members, entered, exited), kept 400 days.

Entered and exited count the ``segment.entered`` / ``segment.exited`` events on the membership-events queue
— real-time moves and evaluation flips alike — each once, however often SQS delivers it, on the day the
transition happened. Members is the segment's count at the day's last counted transition, or after an
evaluation; a day without a point carries the day before's members. Reading them: ``segments.size_history``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.clock import Clock, stored_moment, system_clock
from chalicelib.domain.membership import ENTERED, EXITED
from chalicelib.domain.segments import HISTORY_KEPT_DAYS
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
