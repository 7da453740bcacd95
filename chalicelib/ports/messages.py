"""Every message shape on the service's queues, declared once and checked where a message comes in.

Producers build them with these TypedDicts (mypy checks the fields); each queue handler reads its
records through :func:`parse`, so a message that lacks a field or carries one of the wrong type fails
at the edge, by name, instead of somewhere inside a service. Extra fields are allowed: a message
written by a newer version of the code still reads.
"""

from __future__ import annotations

import types
from typing import Any, Literal, NotRequired, TypedDict, Union, get_args, get_origin, get_type_hints

from chalicelib.resources import (
    CONTACT_CHANGES_BULK_QUEUE,
    CONTACT_CHANGES_DEAD_LETTER_QUEUE,
    CONTACT_CHANGES_QUEUE,
    JOBS_DEAD_LETTER_QUEUE,
    JOBS_QUEUE,
    JOURNEYS_DEAD_LETTER_QUEUE,
    JOURNEYS_QUEUE,
    MEMBERSHIP_EVENTS_DEAD_LETTER_QUEUE,
    MEMBERSHIP_EVENTS_QUEUE,
    SEND_DEAD_LETTER_QUEUE,
    SEND_QUEUE,
    SES_EVENTS_QUEUE,
    TRIGGER_RUNS_DEAD_LETTER_QUEUE,
    TRIGGER_RUNS_QUEUE,
    WEBHOOKS_DEAD_LETTER_QUEUE,
    WEBHOOKS_QUEUE,
)


class MalformedMessage(Exception):
    """A queue message that does not have the shape its queue carries."""


class JobChunk(TypedDict):
    """One chunk of a job (services/jobs.py)."""

    kind: Literal["job.chunk"]
    job_kind: str
    tenant_id: str
    job_id: str
    chunk: int


class ContactChanged(TypedDict):
    """A contact was created, changed or deleted (services/changes.py); written to the outbox first."""

    kind: Literal["contact.changed"]
    id: str
    tenant_id: str
    contact_id: str
    version: int
    change: str
    tags_added: list[str]
    tags_removed: list[str]
    event_types: list[str]
    events: list[dict[str, Any]]
    source: str
    depth: int
    at: str


class MembershipEvent(TypedDict):
    """``segment.entered`` / ``segment.exited`` (domain/membership.py transition_event)."""

    id: str
    type: Literal["segment.entered", "segment.exited"]
    tenant_id: str
    segment_id: str
    contact_id: str
    cause: dict[str, Any]
    at: str


class BuildAudience(TypedDict):
    """Build one shard's audience of a campaign (services/sending.py)."""

    kind: Literal["audience"]
    tenant_id: str
    campaign_id: str
    shard: int


class SendBatch(TypedDict):
    """Mail one batch of a campaign's recipients, each [contact id, address]."""

    kind: Literal["batch"]
    tenant_id: str
    campaign_id: str
    batch: str
    recipients: list[list[str]]
    attempt: int
    variant: NotRequired[str]  # an A/B test's winner, for the held rest of the audience


class DecideWinner(TypedDict):
    """Choose an A/B test's winner once its wait is over, then send the rest (services/sending.py)."""

    kind: Literal["ab_decide"]
    tenant_id: str
    campaign_id: str


class TriggerRunBatch(TypedDict):
    """Apply a run's trigger to one batch of its contacts (services/trigger_runs.py)."""

    tenant_id: str
    trigger_id: str
    run_id: str
    batch: int


class SesNotification(TypedDict):
    """An SES event as SNS delivers it (the event itself is JSON text in ``Message``)."""

    Message: NotRequired[str]
    Type: NotRequired[str]


class WebhookDelivery(TypedDict):
    """One attempt to deliver one event to one endpoint (services/webhooks.py)."""

    kind: Literal["webhook.delivery"]
    tenant_id: str
    webhook_id: str
    delivery_id: str
    attempt: int
    event: dict[str, Any]


class JourneyWake(TypedDict):
    """Move on the contacts of one journey whose wait is over (services/journey_flow.py)."""

    kind: Literal["journey.wake"]
    tenant_id: str
    journey_id: str
    contacts: list[str]


class JourneyEnter(TypedDict):
    """Enter contacts, members of a schedule journey's segments at one of its runs (services/journey_flow.py)."""

    kind: Literal["journey.enter"]
    tenant_id: str
    journey_id: str
    run: str
    """The scheduled time of the run: the cause of these entries, so a redelivery enters no one twice."""
    contacts: list[str]


SHAPES: dict[str, tuple[type[Any], ...]] = {
    JOBS_QUEUE: (JobChunk,),
    JOBS_DEAD_LETTER_QUEUE: (JobChunk,),
    CONTACT_CHANGES_QUEUE: (ContactChanged,),
    CONTACT_CHANGES_BULK_QUEUE: (ContactChanged,),
    CONTACT_CHANGES_DEAD_LETTER_QUEUE: (ContactChanged,),
    MEMBERSHIP_EVENTS_QUEUE: (MembershipEvent,),
    MEMBERSHIP_EVENTS_DEAD_LETTER_QUEUE: (MembershipEvent,),
    SEND_QUEUE: (BuildAudience, SendBatch, DecideWinner),
    SEND_DEAD_LETTER_QUEUE: (BuildAudience, SendBatch, DecideWinner),
    TRIGGER_RUNS_QUEUE: (TriggerRunBatch,),
    TRIGGER_RUNS_DEAD_LETTER_QUEUE: (TriggerRunBatch,),
    SES_EVENTS_QUEUE: (SesNotification,),
    WEBHOOKS_QUEUE: (WebhookDelivery,),
    WEBHOOKS_DEAD_LETTER_QUEUE: (WebhookDelivery,),
    JOURNEYS_QUEUE: (JourneyWake, JourneyEnter),
    JOURNEYS_DEAD_LETTER_QUEUE: (JourneyWake, JourneyEnter),
}
"""What each queue carries (a queue with two shapes tells them apart by ``kind``)."""


def _fits(value: Any, hint: Any) -> bool:
    origin, arguments = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if origin is Literal:
        return value in arguments
    if origin in (Union, types.UnionType):
        return any(_fits(value, argument) for argument in arguments)
    if origin is NotRequired:
        return _fits(value, arguments[0])
    if origin is list:
        return isinstance(value, list) and all(_fits(item, arguments[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    return isinstance(value, hint)


def problems(body: Any, shape: type[Any]) -> list[str]:
    """What is wrong with ``body`` as a ``shape`` (empty: nothing)."""
    if not isinstance(body, dict):
        return ["the message is not a JSON object"]
    found = []
    for field, hint in get_type_hints(shape, include_extras=True).items():
        if field not in body:
            # under postponed annotations Python 3.11 counts a NotRequired field in __required_keys__
            if field in shape.__required_keys__ and get_origin(hint) is not NotRequired:
                found.append(f"{field} is missing")
        elif not _fits(body[field], hint):
            found.append(f"{field} is not {getattr(hint, '__name__', hint)}")
    return found


def parse(queue_name: str, body: Any) -> Any:
    """``body`` as one of the shapes ``queue_name`` carries; MalformedMessage naming the fields otherwise."""
    shapes = SHAPES[queue_name]
    if len(shapes) > 1 and isinstance(body, dict):
        shapes = tuple(s for s in shapes if get_type_hints(s)["kind"] == Literal[body.get("kind")]) or shapes
    found = [problems(body, shape) for shape in shapes]
    if any(not wrong for wrong in found):
        return body
    raise MalformedMessage(f"not a message of {queue_name}: {'; '.join(found[0])}")
