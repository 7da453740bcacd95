"""Campaigns: email to segments (services/campaigns.py, services/sending.py)."""

from __future__ import annotations

from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call
from chalicelib.http.routes.segments import FEATURE as SEGMENTS_FEATURE
from chalicelib.http.schemas import CONFIRM_QUERY, page_of
from chalicelib.services import campaigns

blueprint = ApiBlueprint(__name__)
CAMPAIGN = campaigns.CAMPAIGN_SCHEMA
FEATURE = {**SEGMENTS_FEATURE, "tag": "campaigns"}


@blueprint.operation(
    "POST",
    "/campaigns",
    summary="Create a draft campaign",
    description="Subject and bodies are templates (`{{ contact.first_name }}`, `{{ contact.attributes.city }}`, "
    "`{{ unsubscribe_url }}`); a template error is a 422 naming the field and the line.",
    access=Access.ADMIN,
    status=201,
    request_schema=campaigns.CREATE_CAMPAIGN_SCHEMA,
    response_schema=CAMPAIGN,
    **FEATURE,
)
def create_campaign(call: Call) -> dict:
    return campaigns.create_campaign(call.context, call.body)


@blueprint.operation(
    "GET", "/campaigns", summary="List campaigns", access=Access.VIEWER, query=PAGE_QUERY,
    response_schema=page_of(CAMPAIGN), **FEATURE,
)  # fmt: skip
def list_campaigns(call: Call) -> dict:
    return campaigns.list_campaigns(call.context, *call.page())


@blueprint.operation(
    "GET", "/campaigns/{campaign_id}", summary="A campaign with its status, stats and progress",
    access=Access.VIEWER, response_schema=CAMPAIGN, **FEATURE,
)  # fmt: skip
def get_campaign(call: Call, campaign_id: str) -> dict:
    return campaigns.get_campaign(call.context, campaign_id)


@blueprint.operation(
    "PATCH", "/campaigns/{campaign_id}", summary="Edit a draft or scheduled campaign",
    access=Access.ADMIN, request_schema=campaigns.PATCH_CAMPAIGN_SCHEMA, response_schema=CAMPAIGN, **FEATURE,
)  # fmt: skip
def update_campaign(call: Call, campaign_id: str) -> dict:
    return campaigns.update_campaign(call.context, campaign_id, call.body)


@blueprint.operation(
    "DELETE", "/campaigns/{campaign_id}", summary="Delete a campaign that is not sending or paused",
    access=Access.ADMIN, status=204, query=CONFIRM_QUERY, **FEATURE,
)  # fmt: skip
def delete_campaign(call: Call, campaign_id: str) -> None:
    campaigns.delete_campaign(call.context, campaign_id, call.flag("confirm"))


@blueprint.operation(
    "POST", "/campaigns/{campaign_id}/preview", summary="Render the campaign for one contact",
    access=Access.VIEWER, request_schema=campaigns.PREVIEW_SCHEMA, response_schema=campaigns.RENDERED_SCHEMA,
    **FEATURE,
)  # fmt: skip
def preview_campaign(call: Call, campaign_id: str) -> dict:
    return campaigns.preview_campaign(call.context, campaign_id, call.body)


@blueprint.operation(
    "POST", "/campaigns/{campaign_id}/test", summary="Send the campaign now to up to 5 addresses (not in stats)",
    access=Access.ADMIN, request_schema=campaigns.TEST_SCHEMA, **FEATURE,
)  # fmt: skip
def test_campaign(call: Call, campaign_id: str) -> dict:
    return campaigns.test_send(call.context, campaign_id, call.body)


@blueprint.operation(
    "POST", "/campaigns/{campaign_id}/send", summary="Send now, or at send_at when it is set",
    access=Access.ADMIN, response_schema=CAMPAIGN, **FEATURE,
)  # fmt: skip
def send_campaign(call: Call, campaign_id: str) -> dict:
    return campaigns.send_campaign(call.context, campaign_id)


@blueprint.operation(
    "POST", "/campaigns/{campaign_id}/pause", summary="Pause sending (recipients already claimed still go)",
    access=Access.ADMIN, response_schema=CAMPAIGN, **FEATURE,
)  # fmt: skip
def pause_campaign(call: Call, campaign_id: str) -> dict:
    return campaigns.pause_campaign(call.context, campaign_id)


@blueprint.operation(
    "POST", "/campaigns/{campaign_id}/resume", summary="Resume a paused campaign where it stopped",
    access=Access.ADMIN, response_schema=CAMPAIGN, **FEATURE,
)  # fmt: skip
def resume_campaign(call: Call, campaign_id: str) -> dict:
    return campaigns.resume_campaign(call.context, campaign_id)


@blueprint.operation(
    "POST", "/campaigns/{campaign_id}/cancel", summary="Cancel: nobody else is mailed",
    access=Access.ADMIN, response_schema=CAMPAIGN, **FEATURE,
)  # fmt: skip
def cancel_campaign(call: Call, campaign_id: str) -> dict:
    return campaigns.cancel_campaign(call.context, campaign_id)


@blueprint.operation(
    "GET", "/campaigns/{campaign_id}/recipients", summary="Recipients and what happened to each",
    access=Access.VIEWER,
    query={**PAGE_QUERY, "status": {"schema": {"type": "string"}, "description": "Only recipients in this state."}},
    response_schema=page_of(campaigns.RECIPIENT_SCHEMA), **FEATURE,
)  # fmt: skip
def campaign_recipients(call: Call, campaign_id: str) -> dict:
    return campaigns.recipients(call.context, campaign_id, call.query.get("status"), *call.page())
