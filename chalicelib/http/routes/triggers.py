"""Triggers: segments and contact changes drive actions without anyone pressing send (services/triggers.py)."""

from __future__ import annotations

from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call
from chalicelib.http.routes.segments import FEATURE as SEGMENTS_FEATURE
from chalicelib.http.schemas import CONFIRM_QUERY, page_of
from chalicelib.services import trigger_runs as run_service
from chalicelib.services import triggers

blueprint = ApiBlueprint(__name__)
TRIGGER = triggers.TRIGGER_SCHEMA
FEATURE = {**SEGMENTS_FEATURE, "tag": "triggers"}


@blueprint.operation(
    "POST", "/triggers", summary="Create a trigger",
    description="`event.type` is segment.entered, segment.exited, contact.created, tag.added, event.received or "
    "schedule (`event.expression`: `rate(…)` / `cron(…)`, acting on the members of `event.segments`); `conditions` "
    "are criteria checked on the contact when it fires; actions are add_tag, remove_tag, send_email, reward and "
    "announce. Each (trigger, contact, cause) applies its actions once; a chain of triggers firing triggers stops "
    "at depth 5.",
    access=Access.ADMIN, status=201, request_schema=triggers.CREATE_SCHEMA, response_schema=TRIGGER, **FEATURE,
)  # fmt: skip
def create_trigger(call: Call) -> dict:
    return triggers.create_trigger(call.context, call.body)


@blueprint.operation(
    "GET", "/triggers", summary="List triggers", access=Access.VIEWER, query=PAGE_QUERY,
    response_schema=page_of(TRIGGER), **FEATURE,
)  # fmt: skip
def list_triggers(call: Call) -> dict:
    return triggers.list_triggers(call.context, *call.page())


@blueprint.operation(
    "GET", "/triggers/{trigger_id}", summary="A trigger", access=Access.VIEWER, response_schema=TRIGGER, **FEATURE,
)  # fmt: skip
def get_trigger(call: Call, trigger_id: str) -> dict:
    return triggers.get_trigger(call.context, trigger_id)


@blueprint.operation(
    "PATCH", "/triggers/{trigger_id}", summary="Edit a trigger", access=Access.ADMIN,
    request_schema=triggers.PATCH_SCHEMA, response_schema=TRIGGER, **FEATURE,
)  # fmt: skip
def update_trigger(call: Call, trigger_id: str) -> dict:
    return triggers.update_trigger(call.context, trigger_id, call.body)


@blueprint.operation(
    "DELETE", "/triggers/{trigger_id}", summary="Delete a trigger", access=Access.ADMIN, status=204,
    query=CONFIRM_QUERY, **FEATURE,
)  # fmt: skip
def delete_trigger(call: Call, trigger_id: str) -> None:
    triggers.delete_trigger(call.context, trigger_id, call.flag("confirm"))


@blueprint.operation(
    "GET", "/triggers/{trigger_id}/runs",
    summary="Runs of a trigger, newest first: each scheduled or manual run, and one per day of event firings",
    access=Access.VIEWER, query=PAGE_QUERY, response_schema=page_of(triggers.RUN_SCHEMA), **FEATURE,
)  # fmt: skip
def trigger_runs(call: Call, trigger_id: str) -> dict:
    return triggers.runs(call.context, trigger_id, *call.page())


@blueprint.operation(
    "POST", "/triggers/{trigger_id}/run", summary="Run a schedule trigger now, on its segments' members",
    access=Access.ADMIN, status=202, response_schema=triggers.RUN_SCHEMA, **FEATURE,
)  # fmt: skip
def run_trigger(call: Call, trigger_id: str) -> dict:
    return run_service.run_now(call.context, trigger_id)
