"""The one-email core (services/mail.py) that campaigns, test sends and trigger emails share, on the recording
mailer of tests/support/fakes.py: no moto, no SES."""

from __future__ import annotations

import pytest

from chalicelib.config import get_config
from chalicelib.domain import campaigns as rules
from chalicelib.domain import tokens
from chalicelib.domain.templates import Templates
from chalicelib.ports.mailer import MailError
from chalicelib.services import mail
from chalicelib.services.context import TenantContext
from tests.support.fakes import RecordingMailer, fake_context

CONTACT = {"id": "ctc_1", "first_name": "Ada", "email": "ada@example.com", "attributes": {}, "tags": []}


@pytest.fixture
def ctx() -> TenantContext:
    return fake_context("ten_1", settings={"sender": {"name": "Ada's Shop", "reply_to": "help@example.com"}})


def mailer_of(ctx: TenantContext) -> RecordingMailer:
    assert isinstance(ctx.ports.mailer, RecordingMailer)
    return ctx.ports.mailer


def test_a_rendered_email_carries_the_unsubscribe_headers_the_sender_and_the_feedback_tags(ctx):
    templates = Templates("Hi {{ contact.first_name }}", None, "Bye: {{ unsubscribe_url }}")
    tags = {"campaign_id": "cmp_1", "contact_id": "ctc_1"}
    delivery = mail.deliver(
        ctx, "news@example.com", "ada@example.com", templates, CONTACT, tags, tracked=True, campaign_id="cmp_1"
    )
    assert delivery == mail.Delivery(rules.DELIVERED, message_id="msg-1")
    assert delivery.view() == {"status": "sent", "message_id": "msg-1"}
    (sent,) = mailer_of(ctx).sent
    assert (sent.subject, sent.sender_name, sent.reply_to, sent.to) == (
        "Hi Ada", "Ada's Shop", "help@example.com", "ada@example.com"
    )  # fmt: skip
    url = sent.headers["List-Unsubscribe"].strip("<>")
    assert sent.text == f"Bye: {url}" and "/unsubscribe/" in url
    assert sent.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sent.tags == {"tenant_id": "ten_1", "campaign_id": "cmp_1", "contact_id": "ctc_1"}
    assert sent.tracked


@pytest.mark.parametrize(
    ("tenant_setting", "campaign_choice", "tracked"),
    [(None, None, True), (False, None, False), (False, True, True), (True, False, False), (None, False, False)],
)
def test_opens_and_clicks_are_tracked_as_the_campaign_says_else_as_the_tenant_says(
    tenant_setting, campaign_choice, tracked
):
    ctx = fake_context("ten_1", settings={} if tenant_setting is None else {"tracking": tenant_setting})
    assert mail.tracked(ctx, campaign_choice) is tracked
    mail.deliver(ctx, "news@example.com", "ada@example.com", Templates("s", None, "t"), CONTACT, {}, tracked=tracked)
    assert [sent.tracked for sent in mailer_of(ctx).sent] == [tracked]


def test_a_template_that_does_not_render_is_refused_for_this_contact_without_a_send(ctx):
    templates = Templates("{{ contact.first_name | truncate(3) }}", None, "{{ 1 / 0 }}")
    delivery = mail.deliver(ctx, "news@example.com", "ada@example.com", templates, CONTACT, {}, tracked=True)
    assert delivery.status == rules.REJECTED_ONE and (delivery.reason or "").startswith("render: ")
    assert not delivery.account_wide and mailer_of(ctx).sent == []


@pytest.mark.parametrize(
    ("code", "message", "status", "kind", "account_wide"),
    [
        ("TooManyRequestsException", "Maximum sending rate exceeded.", 429, rules.THROTTLED, True),
        ("LimitExceededException", "Daily message quota exceeded.", 400, rules.QUOTA, True),
        ("AccountSuspendedException", "suspended", 400, rules.BLOCKED, True),
        ("MessageRejected", "Email address is not verified.", 400, rules.REJECTED_ONE, False),
        ("InternalFailure", "We encountered an internal error.", 500, rules.UNCERTAIN, False),
    ],
)
def test_what_the_provider_says_is_classified_once_for_every_caller(ctx, code, message, status, kind, account_wide):
    mailer_of(ctx).refuse.append(MailError(code, message, status))
    delivery = mail.deliver(
        ctx, "news@example.com", "ada@example.com", Templates("s", None, "t"), CONTACT, {}, tracked=True
    )
    assert (delivery.status, delivery.account_wide, delivery.reason) == (kind, account_wide, f"{code}: {message}")


def test_inert_links_look_alike_but_unseal_only_as_previews():
    live = mail.unsubscribe_url("ten_1", "cmp_1", "ada@example.com").rsplit("/", 1)[1]
    inert = mail.unsubscribe_url("ten_1", "cmp_1", "ada@example.com", inert=True).rsplit("/", 1)[1]
    secret = get_config().secret
    assert tokens.unseal(live, purpose=mail.UNSUBSCRIBE_PURPOSE, secret=secret) == {
        "t": "ten_1", "e": "ada@example.com", "c": "cmp_1"
    }  # fmt: skip
    assert tokens.unseal(inert, purpose=mail.UNSUBSCRIBE_PURPOSE, secret=secret) is None
    assert tokens.unseal(inert, purpose=mail.INERT_UNSUBSCRIBE_PURPOSE, secret=secret) is not None
