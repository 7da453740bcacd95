"""One email to one person: the sending core that campaigns, test sends and trigger emails share.

Render the templates for the contact (with a one-click unsubscribe link, RFC 8058), make the SES call
with the tenant's sender name and Reply-To and the tags SES feedback comes back with, and say what
happened in SES's terms (domain/campaigns.py ``classify_ses_error``). Who may be mailed, when (the
send rate) and exactly once (the claim before the call) are the caller's: a campaign decides them for a
batch of 49 (services/sending.py), a trigger for one contact (services/trigger_firing.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.config import get_config
from chalicelib.domain import campaigns as rules
from chalicelib.domain import tokens
from chalicelib.domain.templates import Rendered, RenderFailed, Templates, render
from chalicelib.ports.mailer import Mail, MailError
from chalicelib.services.context import TenantContext

UNSUBSCRIBE_PURPOSE = "unsubscribe"
INERT_UNSUBSCRIBE_PURPOSE = "unsubscribe-preview"


def unsubscribe_url(tenant_id: str, campaign_id: str | None, email: str, *, inert: bool = False) -> str:
    """The one-click unsubscribe link for ``email``. An ``inert`` link (previews, test sends) looks the same but
    unsubscribes nobody: anyone who can read a preview, a viewer included, must not hold a working link."""
    purpose = INERT_UNSUBSCRIBE_PURPOSE if inert else UNSUBSCRIBE_PURPOSE
    token = tokens.seal({"t": tenant_id, "e": email, "c": campaign_id}, purpose=purpose, secret=get_config().secret)
    return f"{get_config().public_url}/unsubscribe/{token}"


def tracked(ctx: TenantContext, choice: bool | None) -> bool:
    """Whether opens and clicks of a mail are tracked: a campaign's own choice, else the tenant's setting."""
    return bool(ctx.settings["tracking"]) if choice is None else choice


@dataclass(frozen=True)
class Delivery:
    """``status`` is ``rules.DELIVERED`` (``message_id`` set) or a ``classify_ses_error`` kind (``reason`` set); a
    template that does not render for the contact is ``rejected`` with a ``render: …`` reason."""

    status: str
    message_id: str | None = None
    reason: str | None = None

    @property
    def account_wide(self) -> bool:
        """SES refused for the account, not for this address: throttled, out of quota, or not sending."""
        return self.status in (rules.THROTTLED, rules.QUOTA, rules.BLOCKED)

    def view(self) -> dict[str, Any]:
        shown = {"message_id": self.message_id} if self.status == rules.DELIVERED else {"reason": self.reason}
        return {"status": self.status, **shown}


def deliver(
    ctx: TenantContext,
    sender: str,
    email: str,
    templates: Templates,
    contact: dict[str, Any],
    tags: dict[str, str],
    *,
    tracked: bool,
    campaign_id: str | None = None,
) -> Delivery:
    """Render and send one email to ``email`` as ``contact`` (its API view). ``tags`` name what sent it
    ({"campaign_id": …} or {"trigger_id": …}) for SES feedback; ``tracked``: opens and clicks (``tracked()``)."""
    url = unsubscribe_url(ctx.tenant_id, campaign_id, email)
    try:
        rendered = render(templates, contact, url)
    except RenderFailed as problem:
        return Delivery(rules.REJECTED_ONE, reason=f"render: {problem}")
    return send_rendered(ctx, sender, email, rendered, url, tags, tracked=tracked)


def send_rendered(
    ctx: TenantContext,
    sender: str,
    email: str,
    rendered: Rendered,
    url: str,
    tags: dict[str, str],
    *,
    tracked: bool,
) -> Delivery:
    """The SES call for an email already rendered with its unsubscribe ``url`` (test sends render first, to
    refuse a template that does not render with a 422)."""
    sender_settings = ctx.settings["sender"]
    mail = Mail(
        sender=sender,
        sender_name=sender_settings.get("name"),
        reply_to=sender_settings.get("reply_to"),
        to=email,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        headers={"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        tags={"tenant_id": ctx.tenant_id, **tags},
        tracked=tracked,
    )
    try:
        return Delivery(rules.DELIVERED, message_id=ctx.ports.mailer.send(mail))
    except MailError as error:
        kind = rules.classify_ses_error(error.code, error.message, error.http_status)
        return Delivery(kind, reason=f"{error.code}: {error.message}"[:500])
