"""The local runtime's Mailbox (local stage only; 404 on deployed stages)."""

from __future__ import annotations

from chalicelib.composition import local_mailbox
from chalicelib.http.api import PAGE_QUERY, Access, ApiBlueprint, Call
from chalicelib.http.schemas import page_of
from chalicelib.services import mailbox

blueprint = ApiBlueprint(__name__)

MAIL_SUMMARY_SCHEMA = {
    "type": "object",
    "required": ["id", "number", "sent_at", "from", "to", "subject"],
    "properties": {
        "id": {"type": "string", "description": "SES's message id."},
        "number": {"type": "integer"},
        "sent_at": {"type": "string"},
        "from": {"type": "string"},
        "to": {"type": "string"},
        "subject": {"type": "string"},
        "tags": {"type": "object", "description": "What sent it: campaign_id or trigger_id."},
    },
}
MAIL_SCHEMA = {
    **MAIL_SUMMARY_SCHEMA,
    "properties": {
        **MAIL_SUMMARY_SCHEMA["properties"],
        "headers": {"type": "array", "items": {"type": "object"}},
        "html": {"type": ["string", "null"]},
        "text": {"type": ["string", "null"]},
        "unsubscribe_url": {"type": ["string", "null"]},
        "one_click": {"type": "boolean"},
    },
}
_LOCAL = "Local stage only (`make run`): every deployed stage answers 404."


@blueprint.operation(
    "GET",
    "/local/mail",
    summary="The mail the local runtime sent for this tenant, newest first",
    description=_LOCAL,
    access=Access.VIEWER,
    query=PAGE_QUERY,
    response_schema=page_of(MAIL_SUMMARY_SCHEMA),
)
def list_mail(call: Call) -> dict:
    return mailbox.list_mail(local_mailbox(), call.tenant_id, *call.page())


@blueprint.operation(
    "GET",
    "/local/mail/{message_id}",
    summary="One sent message: headers, HTML and text, and its one-click unsubscribe URL",
    description=_LOCAL,
    access=Access.VIEWER,
    response_schema=MAIL_SCHEMA,
)
def get_mail(call: Call, message_id: str) -> dict:
    return mailbox.get_mail(local_mailbox(), call.tenant_id, message_id)
