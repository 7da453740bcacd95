"""Journeys: multi-step automation with waits, branches, splits and holdouts (services/journeys.py)."""

from __future__ import annotations

from chalicelib.domain.journeys import PAUSED, RUNNING
from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call
from chalicelib.http.routes.triggers import FEATURE as TRIGGERS_FEATURE
from chalicelib.http.schemas import page_of
from chalicelib.services import journeys

blueprint = ApiBlueprint(__name__)
JOURNEY = journeys.JOURNEY_SCHEMA
FEATURE = {**TRIGGERS_FEATURE, "tag": "journeys"}


@blueprint.operation(
    "POST", "/journeys", summary="Create a journey",
    description="`entry` is segment.entered, contact.created, tag.added, event.received or schedule (`expression` "
    "over `segments`), as a trigger's event, with optional `conditions` (criteria the contact must meet then); "
    "`reentry.mode` never / after (`reentry.after`, ISO 8601) / always; `exit` criteria are checked before every "
    "step; `holdout_percent` (0–50) of entrants are kept out and counted apart; `goal` is an event type and a "
    "window (`within`, ISO 8601). `steps` is a graph from `start`: actions (send_email, add_tag, remove_tag, "
    "reward, announce, webhook; each with `next`), `wait` (`duration` PT1M–P90D, or `until` \"HH:MM\" in the "
    "`time_zone` of the tenant or the contact), `wait_for_event` (`event`, `timeout`, `then`, `timed_out`), "
    "`branch` (`criteria`, `then`, `else`) and `split` (`branches` of `percent` and `next`, adding up to 100). "
    "`next: null` ends the journey. Checked at save: no cycle, every step reachable, every reference existing.",
    access=Access.ADMIN, status=201, request_schema=journeys.CREATE_SCHEMA, response_schema=JOURNEY, **FEATURE,
)  # fmt: skip
def create_journey(call: Call) -> dict:
    return journeys.create_journey(call.context, call.body)


@blueprint.operation(
    "GET", "/journeys", summary="List journeys", access=Access.VIEWER, query=PAGE_QUERY,
    response_schema=page_of(JOURNEY), **FEATURE,
)  # fmt: skip
def list_journeys(call: Call) -> dict:
    return journeys.list_journeys(call.context, *call.page())


@blueprint.operation(
    "GET", "/journeys/{journey_id}", summary="A journey", access=Access.VIEWER, response_schema=JOURNEY, **FEATURE,
)  # fmt: skip
def get_journey(call: Call, journey_id: str) -> dict:
    return journeys.get_journey(call.context, journey_id)


@blueprint.operation(
    "PATCH", "/journeys/{journey_id}", summary="Edit a journey",
    description="A changed definition is a new `version`: contacts inside finish on the version they entered, "
    "or with `move_contacts` move onto it at their next step when the step they are at is in it.",
    access=Access.ADMIN, request_schema=journeys.PATCH_SCHEMA, response_schema=JOURNEY, **FEATURE,
)  # fmt: skip
def update_journey(call: Call, journey_id: str) -> dict:
    return journeys.update_journey(call.context, journey_id, call.body)


@blueprint.operation(
    "DELETE", "/journeys/{journey_id}", summary="Delete a journey", access=Access.ADMIN, status=204, **FEATURE,
)  # fmt: skip
def delete_journey(call: Call, journey_id: str) -> None:
    journeys.delete_journey(call.context, journey_id)


@blueprint.operation(
    "POST", "/journeys/{journey_id}/pause", summary="Pause a journey: no one enters or moves until it resumes",
    access=Access.ADMIN, response_schema=JOURNEY, **FEATURE,
)  # fmt: skip
def pause_journey(call: Call, journey_id: str) -> dict:
    return journeys.set_status(call.context, journey_id, PAUSED)


@blueprint.operation(
    "POST", "/journeys/{journey_id}/resume",
    summary="Resume a journey: waits that ended meanwhile move on at the next minute",
    access=Access.ADMIN, response_schema=JOURNEY, **FEATURE,
)  # fmt: skip
def resume_journey(call: Call, journey_id: str) -> dict:
    return journeys.set_status(call.context, journey_id, RUNNING)


@blueprint.operation(
    "GET", "/journeys/{journey_id}/stats",
    summary="Per step: entered, completed, waiting, exited; for the journey: entered and converted, and the holdout's",
    access=Access.VIEWER, response_schema=journeys.STATS_SCHEMA, **FEATURE,
)  # fmt: skip
def journey_stats(call: Call, journey_id: str) -> dict:
    return journeys.stats(call.context, journey_id)


@blueprint.operation(
    "GET", "/journeys/{journey_id}/contacts/{contact_id}", summary="Where a contact is in a journey, and its history",
    access=Access.VIEWER, response_schema=journeys.POSITION_SCHEMA, **FEATURE,
)  # fmt: skip
def journey_contact(call: Call, journey_id: str, contact_id: str) -> dict:
    return journeys.contact_position(call.context, journey_id, contact_id)
