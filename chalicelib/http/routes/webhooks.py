"""Outbound webhooks: endpoints, their delivery logs and a test event (services/webhooks.py)."""

from __future__ import annotations

from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call
from chalicelib.http.schemas import CONFIRM_QUERY, list_of, page_of
from chalicelib.services import webhooks

blueprint = ApiBlueprint(__name__)
WEBHOOK = webhooks.WEBHOOK_SCHEMA
TAG = {"tag": "webhooks"}


@blueprint.operation(
    "POST",
    "/webhooks",
    summary="Register an endpoint for events (its signing secret is in this answer only)",
    description="`events`: any of segment.entered, segment.exited, campaign.sent, email.delivered, "
    "email.opened, email.clicked, contact.unsubscribed, trigger.fired, reward.granted, or `email.*` or `*`. "
    "Deployed, the URL is https:// and reaches public addresses only; locally, loopback receivers are allowed.",
    access=Access.ADMIN,
    status=201,
    request_schema=webhooks.CREATE_WEBHOOK_SCHEMA,
    response_schema=WEBHOOK,
    **TAG,
)
def create_webhook(call: Call) -> dict:
    return webhooks.create_webhook(call.context, call.body)


@blueprint.operation(
    "GET", "/webhooks", summary="The tenant's webhook endpoints", access=Access.ADMIN,
    response_schema=list_of(WEBHOOK), **TAG,
)  # fmt: skip
def list_webhooks(call: Call) -> dict:
    return webhooks.list_webhooks(call.context)


@blueprint.operation(
    "GET", "/webhooks/{webhook_id}", summary="One endpoint (without its secret)", access=Access.ADMIN,
    response_schema=WEBHOOK, **TAG,
)  # fmt: skip
def get_webhook(call: Call, webhook_id: str) -> dict:
    return webhooks.get_webhook(call.context, webhook_id)


@blueprint.operation(
    "PATCH", "/webhooks/{webhook_id}", summary="Change the URL, events or description; switch it off or on",
    access=Access.ADMIN, request_schema=webhooks.PATCH_WEBHOOK_SCHEMA, response_schema=WEBHOOK, **TAG,
)  # fmt: skip
def update_webhook(call: Call, webhook_id: str) -> dict:
    return webhooks.update_webhook(call.context, webhook_id, call.body)


@blueprint.operation(
    "DELETE", "/webhooks/{webhook_id}", summary="Delete an endpoint and its log (triggers posting to it are "
    "reviewed first)", access=Access.ADMIN, status=204, query=CONFIRM_QUERY, **TAG,
)  # fmt: skip
def delete_webhook(call: Call, webhook_id: str) -> None:
    webhooks.delete_webhook(call.context, webhook_id, call.flag("confirm"))


@blueprint.operation(
    "GET", "/webhooks/{webhook_id}/deliveries", summary="The endpoint's deliveries, newest first (kept 30 days)",
    access=Access.ADMIN, query=PAGE_QUERY, response_schema=page_of(webhooks.DELIVERY_SCHEMA), **TAG,
)  # fmt: skip
def webhook_deliveries(call: Call, webhook_id: str) -> dict:
    return webhooks.deliveries(call.context, webhook_id, *call.page())


@blueprint.operation(
    "POST", "/webhooks/{webhook_id}/test", summary="Deliver a webhook.test event now, once, and say how it went",
    access=Access.ADMIN, response_schema=webhooks.DELIVERY_SCHEMA, **TAG,
)  # fmt: skip
def test_webhook(call: Call, webhook_id: str) -> dict:
    return webhooks.send_test(call.context, webhook_id)
