"""Moving contacts through journeys (the rules are domain/journeys.py).

- **Entering**: the occurrences that fire triggers (a membership event, a contact change) enter the journeys
  whose entry they match, once per cause, as the re-entry rules allow; a share is kept out as the holdout.
  A schedule entry's run (found by the minute schedule, ``enter_scheduled``) queues its segments' members,
  100 a message, the run's time being their cause.
- **Running**: from the step it reached, a contact goes on step by step (exit criteria checked before each)
  until it waits or the journey ends. Every move is written conditioned on the position read, with the
  counters it changes; an action is keyed by (journey, contact, entry, step), so one redone after a crash
  is the same action.
- **Waking**: a wait that is over is in the due-time index; the minute schedule reads it and queues one
  wake message per journey and 100 contacts (``wake_due``); the wake handler moves each contact on.
- **Events**: a contact's events end its ``wait_for_event`` at once (in the handler of its change) and
  count for the journey's goal.
- **Pausing** stops entries, wake-ups and event-ended waits (a batch already under way finishes its moves,
  up to each contact's next wait); on resume, the waits that ended meanwhile are woken at the next minute.

Why a due-time index and a minute schedule rather than one EventBridge Scheduler schedule per waiting contact:
a wait starts with one write that the move makes anyway (the index is a sparse GSI of the position), the
drain costs one query page per 500 waits over per shard, and a contact that moves on early (an event, an
exit) leaves nothing behind to delete; a schedule per contact would add a CreateSchedule and a
DeleteSchedule call per wait ($1 per million invocations plus those calls), and minute precision is what
waits of minutes to 90 days need.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain import journeys as rules
from chalicelib.domain import triggers as trigger_rules
from chalicelib.domain.clock import Clock, parse_rfc3339, system_clock, to_rfc3339
from chalicelib.domain.contacts import Contact, contact_id_for
from chalicelib.domain.engine import BrokenReference
from chalicelib.domain.journeys import Journey, Position
from chalicelib.domain.population import Population
from chalicelib.domain.schedules import run_after
from chalicelib.logs import logger
from chalicelib.ports.messages import ContactChanged, JourneyEnter, JourneyWake
from chalicelib.resources import JOURNEYS_QUEUE
from chalicelib.services import actions
from chalicelib.services.context import TenantContext
from chalicelib.services.membership import members_of, segments_holding

WAKE_BATCH = 100
RETRY_LATER = timedelta(minutes=1)
"""When the minute drain takes up a run that stopped because an email had to wait (unless the message that
carried it, delivered again, does first)."""
_RECORD_ATTEMPTS = 3
_TAG_STEPS = (trigger_rules.ADD_TAG, trigger_rules.REMOVE_TAG)


class _Flow:
    """One tenant's journeys as a batch of messages moves contacts through them: definitions by version and
    compiled criteria read once."""

    def __init__(self, ctx: TenantContext, clock: Clock) -> None:
        self.ctx, self.clock = ctx, clock
        self._definitions: dict[tuple[str, int], Journey | None] = {}
        self._read_ahead: dict[tuple[str, str], Position | None] = {}

    def read_ahead(self, journey_id: str, contact_ids: list[str]) -> None:
        """Read the positions of a message's contacts in one request; each is used once (by ``position``)."""
        found = self.ctx.ports.journeys.positions(journey_id, contact_ids)
        self._read_ahead.update({(journey_id, c): found.get(c) for c in contact_ids})

    def position(self, journey_id: str, contact_id: str) -> Position | None:
        """The contact's position: read ahead with its message's, or else now. Every write is conditioned on
        the position read, so one read ahead that another worker moved meanwhile is refused, not lost."""
        key = (journey_id, contact_id)
        if key in self._read_ahead:
            return self._read_ahead.pop(key)
        return self.ctx.ports.journeys.position(journey_id, contact_id)

    def current(self, journey_id: str) -> Journey | None:
        """The journey as it is now (its status, its latest version), as the batch read it."""
        return next((journey for journey in self.ctx.journeys if journey.id == journey_id), None)

    def definition(self, journey_id: str, version: int) -> Journey | None:
        """The journey at ``version``: what a contact who entered then goes through."""
        current = self.current(journey_id)
        if current is None or current.version == version:
            return current
        key = (journey_id, version)
        if key not in self._definitions:
            self._definitions[key] = self.ctx.ports.journeys.definition(journey_id, version)
        return self._definitions[key]

    def adopt(self, position: Position) -> Position:
        """The position on the version contacts were moved to, when an edit asked for it and its step is there
        (written with its next move)."""
        current = self.current(position.journey_id)
        if current is None or current.moved_to is None or position.version >= current.moved_to:
            return position
        then, now = (
            self.definition(position.journey_id, position.version),
            self.definition(current.id, current.moved_to),
        )
        if then is None or now is None or position.step is None:
            return position
        kind_then = then.steps.get(position.step, {}).get("type")
        kind_now = now.steps.get(position.step, {}).get("type")
        if rules.adopted(position, kind_then, kind_now, current.moved_to):
            return replace(position, version=current.moved_to)
        return position

    def holds(self, criteria: dict[str, Any] | None, contact: Contact, events: list[dict[str, Any]]) -> bool:
        """Criteria hold for the contact now (criteria naming a deleted segment never hold)."""
        if criteria is None:
            return False
        try:
            compiled = self.ctx.compile(criteria)
        except BrokenReference:
            return False
        return bool(compiled.evaluate(Population([contact], {contact.id: events}), self.clock())[0])

    def move(self, before: Position | None, after: Position) -> bool:
        counts = rules.step_counts(before, after)
        return self.ctx.ports.journeys.move(before, after, counts, rules.journey_counts(before, after))

    # --- entering ---------------------------------------------------------------------------------------

    def enter(self, journey: Journey, occurrence: trigger_rules.Occurrence, cause: str) -> int:
        """Enter the contact (once per cause, as re-entry allows), then run it; 1 if it entered."""
        contact_id, now = occurrence.contact_id, self.clock()
        previous = self.position(journey.id, contact_id)
        if previous is not None and previous.cause == cause and previous.state == rules.ACTIVE:
            self.run(previous, previous, occurrence.depth)  # a redelivered entry whose run stopped (SES was busy…)
            return 0
        if not rules.may_enter(journey, previous, cause, now) or not trigger_rules.may_fire(occurrence.depth):
            return 0
        segments = journey.entry.get("segments") or []
        if occurrence.type not in (trigger_rules.SEGMENT_ENTERED, trigger_rules.SCHEDULE) and segments:
            contact = self.ctx.ports.contacts.get_contact(contact_id)
            if contact is None or not segments_holding(self.ctx, contact.ordinal, segments):
                return 0
        conditions = journey.entry.get("conditions")
        if conditions is not None:
            contact, events = self.ctx.ports.contacts.read_contact(contact_id)
            if contact is None or not self.holds(conditions, contact, events):
                return 0
        return int(self.run(previous, rules.entered(journey, contact_id, previous, cause, now), occurrence.depth))

    # --- running ----------------------------------------------------------------------------------------

    def run(self, stored: Position | None, position: Position, depth: int) -> bool:
        """Go on from ``position`` until the contact waits or finishes; False if another worker moved it first.

        ``stored`` is the position as stored: the moves from it are written together, in one transaction
        conditioned on it, when the contact stops (a wait, the end), before an action that follows a branch
        (the choice is claimed before anything depends on it) and when an email must wait. An action redone —
        after a crash, or by a worker that lost the race — is the same action: each is keyed by its step."""
        path = _Path(stored, position)
        contact: Contact | None = None
        events: list[dict[str, Any]] = []
        read = False
        for _ in range(2 * rules.MAX_STEPS + 2):
            position = path.position
            if position.finished or position.state == rules.WAITING or position.step is None:
                break
            position = self.adopt(position)
            journey = self.definition(position.journey_id, position.version)
            if journey is None:  # the journey was deleted
                self.ctx.ports.journeys.drop(position)
                return False
            assert position.step is not None
            step = journey.steps[position.step]
            if step["type"] in rules.ACTION_STEPS and path.decided and not self._record(path):
                return False
            if not read:
                contact, events = self.ctx.ports.contacts.read_contact(position.contact_id)
                read = True
            now = self.clock()
            try:
                after = self._next(journey, position, contact, events, now, depth)
            except actions.SendLater:  # taken up again by the redelivered message, or else the minute drain
                path.add(position, replace(position, due_at=to_rfc3339(now + RETRY_LATER)), decided=False)
                self._record(path)
                raise
            if contact is not None and step["type"] in _TAG_STEPS and after.history[-1]["outcome"] == "completed":
                tags = (
                    contact.tags | {step["tag"]}
                    if step["type"] == trigger_rules.ADD_TAG
                    else contact.tags - {step["tag"]}
                )
                contact = replace(contact, tags=frozenset(tags))  # as written: the next steps see it
            path.add(position, after, decided=step["type"] == rules.BRANCH)
        return self._record(path)

    def _record(self, path: _Path) -> bool:
        """Write the moves of ``path`` since it was last written; False if another worker moved the contact."""
        for _ in range(_RECORD_ATTEMPTS):
            if path.position is path.stored:
                return True
            if self.ctx.ports.journeys.move(path.stored, path.position, dict(path.steps), dict(path.totals)):
                path.written()
                return True
            now_stored = self.ctx.ports.journeys.position(path.position.journey_id, path.position.contact_id)
            if not path.only_converted(now_stored):
                return False
            assert now_stored is not None
            path.rebase(now_stored)
        return False

    def _next(
        self,
        journey: Journey,
        position: Position,
        contact: Contact | None,
        events: list[dict[str, Any]],
        now: datetime,
        depth: int,
    ) -> Position:
        """The position after the current step (exit criteria first)."""
        if contact is None:
            return rules.moved(position, None, now, "contact deleted", state=rules.EXITED)
        if journey.exit is not None and self.holds(journey.exit, contact, events):
            return rules.moved(position, None, now, "exited", state=rules.EXITED)
        assert position.step is not None
        step = journey.steps[position.step]
        kind = step["type"]
        if kind in rules.ACTION_STEPS:
            actor = actions.Actor("journey", journey.id, journey.name, position.step)
            outcome = "completed"
            try:
                actions.apply_action(self.ctx, actor, step, contact, position.action_key(), depth, now)
            except actions.SendLater:
                raise  # the message is delivered again; the position is where it was
            except Exception:  # the journey goes on; the step's history says it failed
                logger.exception("journey action failed", extra={"tenant_id": self.ctx.tenant_id,
                                 "journey_id": journey.id, "step": position.step})  # fmt: skip
                outcome = "failed"
            return rules.moved(position, step["next"], now, outcome)
        if kind in (rules.WAIT, rules.WAIT_FOR_EVENT):
            tenant_zone = self.ctx.settings.get("time_zone")
            due = rules.wait_due(step, now, tenant_zone, contact.attributes.get("time_zone"))
            return rules.moved(position, position.step, now, "waiting", state=rules.WAITING, due_at=due,
                               waiting_for=step.get("event"))  # fmt: skip
        if kind == rules.BRANCH:
            holds = self.holds(step["criteria"], contact, events)
            return rules.moved(position, step["then"] if holds else step["else"], now, "then" if holds else "else")
        to = rules.split_choice(journey.id, position.step, contact.id, step["branches"])
        return rules.moved(position, to, now, "split")

    # --- waking -----------------------------------------------------------------------------------------

    def wake(self, journey_id: str, contact_id: str) -> bool:
        """Move on a contact whose wait is over; False when there is nothing to do (already moved, not due,
        the journey paused)."""
        position = self.position(journey_id, contact_id)
        now = self.clock()
        if position is None or position.finished or position.due_at is None:
            return False
        if parse_rfc3339(position.due_at) > now:
            return False
        position = self.adopt(position)
        journey = self.definition(journey_id, position.version)
        current = self.current(journey_id)
        if journey is None or current is None:
            self.ctx.ports.journeys.drop(position)
            return False
        if current.status == rules.PAUSED:
            return False
        if position.state == rules.ACTIVE:  # its run stopped (an email had to wait): take it up again
            return self.run(position, replace(position, due_at=None), 0)
        assert position.step is not None
        step = journey.steps[position.step]
        if step["type"] == rules.WAIT:  # one way on: written with the steps after it
            return self.run(position, rules.moved(position, step["next"], now, "completed"), 0)
        after = rules.moved(position, step["timed_out"], now, "timed_out")
        if not self.move(position, after):  # timed out, or happened: claimed before any step after it
            return False
        self.run(after, after, 0)
        return True

    # --- events -----------------------------------------------------------------------------------------

    def on_events(self, contact_id: str, events: list[dict[str, Any]], depth: int, recorded_at: str | None) -> int:
        """The contact's events end its wait_for_event steps and count for goals; the moves made."""
        moves = 0
        types = {event.get("type") for event in events}
        for current in self.ctx.journeys:
            if current.status != rules.RUNNING or not rules.listens_to(current, types):
                continue
            position = self.ctx.ports.journeys.position(current.id, contact_id)
            if position is None:
                continue
            position = self.adopt(position)
            journey = self.definition(current.id, position.version)
            if journey is None:
                continue
            for event in events:
                if rules.converts(journey, position, event, recorded_at):
                    converted = replace(position, converted_at=to_rfc3339(self.clock()), revision=position.revision + 1)
                    if self.move(position, converted):
                        position, moves = converted, moves + 1
                moved = self._event_ends_wait(journey, position, event, recorded_at)
                if moved is not None and self.move(position, moved):  # claimed before any step after it
                    position, moves = moved, moves + 1
                    self.run(moved, moved, depth)
                    break
        return moves

    def _event_ends_wait(
        self, journey: Journey, position: Position, event: dict[str, Any], recorded_at: str | None
    ) -> Position | None:
        if position.state != rules.WAITING or position.waiting_for != event.get("type") or position.step is None:
            return None
        if not rules.came_after(position.since, event, recorded_at):
            return None
        step = journey.steps[position.step]
        return rules.moved(position, step["then"], self.clock(), "happened")


class _Path:
    """The moves a contact made since its position was last written, and the counters they add."""

    def __init__(self, stored: Position | None, position: Position) -> None:
        self.stored, self.position = stored, position
        self.steps: Counter[tuple[str, str]] = Counter()
        self.totals: Counter[str] = Counter()
        self.decided = False
        if position is not stored:
            self._count(stored, position)

    def _count(self, before: Position | None, after: Position) -> None:
        self.steps.update(rules.step_counts(before, after))
        self.totals.update(rules.journey_counts(before, after))

    def add(self, before: Position, after: Position, decided: bool) -> None:
        self._count(before, after)
        self.position = after
        self.decided = self.decided or decided

    def written(self) -> None:
        self.stored = self.position
        self.steps.clear()
        self.totals.clear()
        self.decided = False

    def only_converted(self, now_stored: Position | None) -> bool:
        """Whether the position stored now differs from the one read only by a conversion (its goal event
        arrived meanwhile), so the moves can be written over it."""
        before = self.stored
        return (
            now_stored is not None
            and before is not None
            and (now_stored.entry, now_stored.step, now_stored.state) == (before.entry, before.step, before.state)
        )

    def rebase(self, now_stored: Position) -> None:
        self.position = replace(self.position, converted_at=now_stored.converted_at, revision=now_stored.revision + 1)
        self.stored = now_stored


def _entries(flow: _Flow, occurrences: list[trigger_rules.Occurrence]) -> int:
    kinds = {o.type for o in occurrences}
    entered = 0
    for journey in flow.ctx.journeys:
        if journey.status != rules.RUNNING or journey.entry["type"] not in kinds:
            continue
        for occurrence in occurrences:
            for cause in trigger_rules.causes(journey.entry, occurrence):
                entered += flow.enter(journey, occurrence, cause)
    return entered


def on_contact_change(ctx: TenantContext, message: ContactChanged, clock: Clock = system_clock) -> int:
    """Entries on contact.created / tag.added / event.received; events ending waits and reaching goals."""
    if not ctx.journeys:
        return 0
    flow = _Flow(ctx, clock)
    moves = _entries(flow, trigger_rules.change_occurrences(message))
    if message.get("events"):
        moves += flow.on_events(
            message["contact_id"], message["events"], int(message.get("depth", 0)), message.get("at")
        )
    return moves


def on_membership_event(ctx: TenantContext, event: dict[str, Any], clock: Clock = system_clock) -> int:
    """Entries on segment.entered."""
    if not ctx.journeys:
        return 0
    return _entries(_Flow(ctx, clock), [trigger_rules.membership_occurrence(event)])


def handle(ctx: TenantContext, message: JourneyWake | JourneyEnter, clock: Clock = system_clock) -> int:
    """A message of the journeys queue: contacts of one journey whose wait is over, or who enter at a run of
    its schedule; how many moved on (or entered)."""
    flow = _Flow(ctx, clock)
    if message["kind"] == "journey.wake":
        flow.read_ahead(message["journey_id"], message["contacts"])
        return sum(flow.wake(message["journey_id"], contact_id) for contact_id in message["contacts"])
    journey = flow.current(message["journey_id"])
    if journey is None or journey.status != rules.RUNNING:
        return 0
    flow.read_ahead(journey.id, message["contacts"])
    return sum(
        flow.enter(journey, trigger_rules.Occurrence(trigger_rules.SCHEDULE, contact_id, 0, event_id=message["run"]),
                   f"run:{message['run']}")
        for contact_id in message["contacts"]
    )  # fmt: skip


def enter_scheduled(due: list[tuple[str, str]], context_of: Any, clock: Clock = system_clock) -> int:
    """Start the runs of the schedule journeys whose time has come (``due``: tenant, journey): their
    segments' members are queued to enter, then the schedule moves on. A worker that stops in between leaves
    the run due: the next minute queues it again, and the run's time, their cause, enters no one twice."""
    started = 0
    now = clock()
    for tenant_id, journey_id in due:
        ctx = context_of(tenant_id)
        journey = ctx.ports.journeys.get(journey_id)
        if journey is None or journey.status != rules.RUNNING or journey.next_run_at is None:
            continue
        contacts = [contact_id_for(o) for o in members_of(ctx, journey.entry["segments"])]
        ctx.ports.queues.send(JOURNEYS_QUEUE, [
            JourneyEnter(kind="journey.enter", tenant_id=tenant_id, journey_id=journey_id, run=journey.next_run_at,
                         contacts=contacts[i : i + WAKE_BATCH])
            for i in range(0, len(contacts), WAKE_BATCH)
        ])  # fmt: skip
        upcoming = run_after(journey.entry["expression"], journey.next_run_at, now)
        started += ctx.ports.journeys.advance_schedule(journey, upcoming)
        logger.info("journey run started", extra={"tenant_id": tenant_id, "journey_id": journey_id,
                                                  "contacts": len(contacts)})  # fmt: skip
    return started


def wake_due(due: list[tuple[str, str, str]], context_of: Any) -> int:
    """Queue wake messages for the waits over (``due``: tenant, journey, contact), a journey and up to
    ``WAKE_BATCH`` contacts a message; a paused journey's wait for its resume. Returns the messages queued.
    A wait still in the index at the next minute (its message not handled yet) is queued again: the wake
    finds it moved and does nothing."""
    by_journey: dict[tuple[str, str], list[str]] = {}
    for tenant_id, journey_id, contact_id in due:
        by_journey.setdefault((tenant_id, journey_id), []).append(contact_id)
    queued = 0
    for (tenant_id, journey_id), contacts in by_journey.items():
        ctx = context_of(tenant_id)
        journey = ctx.ports.journeys.get(journey_id)
        if journey is not None and journey.status == rules.PAUSED:
            continue
        messages = [
            JourneyWake(
                kind="journey.wake", tenant_id=tenant_id, journey_id=journey_id, contacts=contacts[i : i + WAKE_BATCH]
            )
            for i in range(0, len(contacts), WAKE_BATCH)
        ]
        queued += ctx.ports.queues.send(JOURNEYS_QUEUE, messages)
    return queued
