"""The contact portal (services/portal.py) on in-memory ports: tokens for one contact, and that contact's
own challenges with progress, never anyone else's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.config import get_config
from chalicelib.domain import tokens
from chalicelib.domain.contacts import contact_id_for
from chalicelib.domain.errors import NotFound, Unauthorized, ValidationFailed
from chalicelib.services import engagements, evaluation, jobs, portal, shards
from chalicelib.services.context import TenantContext
from chalicelib.services.principal import Principal
from tests.support.fakes import InMemoryCatalog, fake_context
from tests.support.on_fakes import create, put, run_jobs
from tests.unit.test_engagement_service import challenge


@pytest.fixture(autouse=True)
def evaluation_kind():
    jobs.register_kinds(evaluation.JOB_KINDS | shards.JOB_KINDS)


@pytest.fixture
def ctx() -> TenantContext:
    context = fake_context("ten_1", InMemoryCatalog(tags={"vip"}))
    put(context, 1, "vip", bought_days_ago=0.5)
    put(context, 2)
    return context


def as_contact(ctx: TenantContext, contact_id: str) -> TenantContext:
    """The context a portal token for ``contact_id`` opens."""
    principal = Principal(kind="portal", tenant_id=ctx.tenant_id, contact_id=contact_id)
    return TenantContext(ctx.ports, ctx.settings, principal)


def test_a_token_names_the_tenant_and_the_contact_and_expires_within_bounds(ctx):
    now = datetime(2026, 11, 30, 10, tzinfo=UTC)
    issued = portal.issue_token(ctx, "p-1", "3600", clock=lambda: now)
    assert issued["expires_at"].startswith("2026-11-30T11:00:00")
    opened = tokens.unseal(issued["token"], purpose=tokens.PORTAL, secret=get_config().secret)
    assert (opened["t"], opened["c"]) == ("ten_1", contact_id_for(1))
    with pytest.raises(ValidationFailed):
        portal.issue_token(ctx, "p-1", "60")  # under five minutes
    with pytest.raises(NotFound):
        portal.issue_token(ctx, "p-404", None)


def test_a_contact_sees_its_own_challenges_with_progress_and_nobody_elses(ctx):
    vips = create(ctx, {"tag": "vip"}, "VIPs")
    run_jobs(ctx)
    made = challenge(ctx, vips["id"], goal={"event_type": "purchase", "count": 2})
    (mine,) = portal.challenges(as_contact(ctx, contact_id_for(1)))["items"]
    assert mine["id"] == made["id"] and mine["progress"] == {"done": 1, "target": 2, "complete": False}
    assert portal.challenges(as_contact(ctx, contact_id_for(2)))["items"] == []
    assert engagements.award_challenges(ctx, contact_id_for(1)) == 0  # one purchase of two


def test_a_token_of_a_deleted_contact_opens_nothing(ctx):
    with pytest.raises(Unauthorized):
        portal.challenges(as_contact(ctx, contact_id_for(9)))
    with pytest.raises(Unauthorized):
        portal.announcements(as_contact(ctx, contact_id_for(9)))
