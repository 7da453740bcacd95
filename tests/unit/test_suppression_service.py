"""Suppressions, unsubscribe links and SES feedback (services/suppressions.py) on in-memory ports."""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.errors import Conflict, NotFound, ValidationFailed
from chalicelib.services import mail, suppressions
from chalicelib.services.context import TenantContext
from tests.support.fakes import fake_context


@pytest.fixture
def ctx() -> TenantContext:
    return fake_context("ten_1")


def by_tenant(ctx: TenantContext):
    return lambda tenant_id: {ctx.tenant_id: ctx}[tenant_id]


def listed(ctx: TenantContext) -> dict[str, str]:
    return {s["email"]: s["reason"] for s in suppressions.list_suppressions(ctx, 50, None)["items"]}


def test_addresses_added_by_hand_are_normalised_and_can_be_removed(ctx):
    added = suppressions.add_suppression(ctx, {"email": "  Ada@Example.com "})
    assert (added["email"], added["reason"]) == ("ada@example.com", "manual")
    with pytest.raises(ValidationFailed):
        suppressions.add_suppression(ctx, {"email": "not an address"})
    suppressions.remove_suppression(ctx, "ADA@example.com")
    assert listed(ctx) == {}
    with pytest.raises(NotFound):
        suppressions.remove_suppression(ctx, "ada@example.com")


def test_a_one_click_unsubscribe_suppresses_once_and_only_the_person_can_undo_it(ctx):
    url = mail.unsubscribe_url("ten_1", "cmp_1", "ada@example.com")
    token = url.rsplit("/", 1)[1]
    assert "ada@example.com" in suppressions.unsubscribe_page(token) and listed(ctx) == {}  # a GET changes nothing
    for _ in range(2):
        assert "Unsubscribed" in suppressions.unsubscribe(by_tenant(ctx), token)
    assert listed(ctx) == {"ada@example.com": "unsubscribed"}
    with pytest.raises(Conflict):
        suppressions.remove_suppression(ctx, "ada@example.com")
    with pytest.raises(NotFound):
        suppressions.unsubscribe(by_tenant(ctx), token[:-2] + "xx")


def test_an_inert_link_from_a_preview_unsubscribes_nobody(ctx):
    token = mail.unsubscribe_url("ten_1", "cmp_1", "ada@example.com", inert=True).rsplit("/", 1)[1]
    assert "Nothing changed" in suppressions.unsubscribe(by_tenant(ctx), token)
    assert listed(ctx) == {}


def test_permanent_bounces_and_complaints_suppress_and_the_rest_is_only_logged(ctx):
    def notification(event: dict) -> dict:
        return {"Type": "Notification", "Message": json.dumps({**event, "mail": {"tags": {"tenant_id": ["ten_1"]}}})}

    bounce = {
        "eventType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": "B@x.io"}]},
    }
    soft = {
        "eventType": "Bounce",
        "bounce": {"bounceType": "Transient", "bouncedRecipients": [{"emailAddress": "s@x.io"}]},
    }
    complaint = {"eventType": "Complaint", "complaint": {"complainedRecipients": [{"emailAddress": "c@x.io"}]}}
    for event in (bounce, soft, complaint, {"eventType": "Delivery"}):
        suppressions.apply_ses_notification(by_tenant(ctx), notification(event))
    assert listed(ctx) == {"b@x.io": "bounce", "c@x.io": "complaint"}
    untagged = {"Message": json.dumps(bounce)}
    suppressions.apply_ses_notification(by_tenant(ctx), untagged)  # no tenant tag: nothing to suppress for anyone
    assert listed(ctx) == {"b@x.io": "bounce", "c@x.io": "complaint"}
