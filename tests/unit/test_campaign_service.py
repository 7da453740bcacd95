"""Campaigns and their sending (services/campaigns.py, services/sending.py) on in-memory ports: the audience
snapshot, exactly-once mail under redelivery, suppressions, pause and resume, throttling, the dead-letter
path and the schedule."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain import ab_tests as ab_rules
from chalicelib.domain.campaigns import Suppression
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.errors import Conflict, ValidationFailed
from chalicelib.domain.segments import preview_from
from chalicelib.ports.mailer import MailError
from chalicelib.resources import SEND_QUEUE
from chalicelib.services import campaigns, contacts, evaluation, jobs, segments, sending, shards, suppressions
from chalicelib.services.context import TenantContext
from tests.support.fakes import InMemoryCatalog, RecordingMailer, fake_context
from tests.support.on_fakes import create, run_jobs
from tests.support.ses_events import ses_notification as ses

AT = "2026-11-30T10:00:00Z"


@pytest.fixture(autouse=True)
def evaluations(monkeypatch):
    jobs.register_kinds(evaluation.JOB_KINDS | shards.JOB_KINDS)
    monkeypatch.setattr(sending, "REQUEUE_DELAY_CAP", 0)


@pytest.fixture
def ctx() -> TenantContext:
    ctx = fake_context("ten_1", InMemoryCatalog(tags={"news", "vip"}))
    for n, tags in enumerate((["news"], ["news", "vip"], ["vip"], ["news"])):
        contacts.create_contact(ctx, {"external_id": f"p-{n}", "email": f"p{n}@example.com", "tags": tags,
                                      "first_name": f"P{n}"})  # fmt: skip
    ctx.ports.queues.take("segments-contact-changes")
    return ctx


def mailer(ctx: TenantContext) -> RecordingMailer:
    assert isinstance(ctx.ports.mailer, RecordingMailer)
    return ctx.ports.mailer


def a_campaign(ctx: TenantContext, criteria: dict, **fields: Any) -> dict:
    segment = create(ctx, criteria)
    run_jobs(ctx)
    body = {"name": "Welcome", "from": "hello@example.com", "subject": "Hi {{ contact.first_name }}",
            "text": "Hello {{ contact.first_name }}", "segments": [segment["id"]], **fields}  # fmt: skip
    return campaigns.create_campaign(ctx, body)


def deliver_sends(ctx: TenantContext, times: int = 2) -> None:
    """Deliver every send message (each ``times``, the copies with their own message id) until none is left."""
    n = 0
    while messages := ctx.ports.queues.take(SEND_QUEUE):
        for message in messages:
            for copy in range(times):
                n += 1
                if message["kind"] == "audience":
                    sending.build_audience(ctx, message["campaign_id"], message["shard"])
                else:
                    sending.send_batch(ctx, message, f"msg-{n}-{copy}", sleep=lambda seconds: None)


def test_a_campaign_mails_its_segment_once_even_when_every_message_comes_twice(ctx):
    made = a_campaign(ctx, {"tag": "news"})
    assert made["status"] == "draft"
    assert campaigns.send_campaign(ctx, made["id"])["status"] == "sending"
    deliver_sends(ctx, times=2)
    assert sorted(m.to for m in mailer(ctx).sent) == ["p0@example.com", "p1@example.com", "p3@example.com"]
    assert sorted(m.subject for m in mailer(ctx).sent) == ["Hi P0", "Hi P1", "Hi P3"]
    done = campaigns.get_campaign(ctx, made["id"])
    assert done["status"] == "sent" and done["stats"]["sent"] == 3 and done["stats"]["audience"] == 3
    listed = campaigns.recipients(ctx, made["id"], "sent", 10, None)["items"]
    assert sorted(r["email"] for r in listed) == ["p0@example.com", "p1@example.com", "p3@example.com"]
    with pytest.raises(Conflict):
        campaigns.send_campaign(ctx, made["id"])


def test_suppressed_and_excluded_contacts_are_not_mailed(ctx):
    vip = create(ctx, {"tag": "vip"}, name="VIP")
    ctx.ports.suppressions.suppress(Suppression("p3@example.com", "bounce", AT))
    made = a_campaign(ctx, {"tag": "news"}, exclude_segments=[vip["id"]])
    campaigns.send_campaign(ctx, made["id"])
    deliver_sends(ctx)
    assert [m.to for m in mailer(ctx).sent] == ["p0@example.com"]
    stats = campaigns.get_campaign(ctx, made["id"])["stats"]
    assert (stats["sent"], stats["suppressed"], stats["audience"]) == (1, 1, 2)


def test_a_paused_campaign_claims_nobody_until_it_is_resumed(ctx):
    made = a_campaign(ctx, {"tag": "news"})
    campaigns.send_campaign(ctx, made["id"])
    for message in ctx.ports.queues.take(SEND_QUEUE):
        sending.build_audience(ctx, message["campaign_id"], message["shard"])
    batches = ctx.ports.queues.take(SEND_QUEUE)
    assert campaigns.pause_campaign(ctx, made["id"])["status"] == "paused"
    for n, message in enumerate(batches):
        sending.send_batch(ctx, message, f"held-{n}", sleep=lambda seconds: None)
    assert mailer(ctx).sent == []
    assert campaigns.resume_campaign(ctx, made["id"])["status"] == "sending"
    deliver_sends(ctx)
    assert len(mailer(ctx).sent) == 3 and campaigns.get_campaign(ctx, made["id"])["status"] == "sent"


def test_a_throttled_batch_comes_back_with_only_the_recipients_it_released(ctx):
    made = a_campaign(ctx, {"tag": "news"})
    mailer(ctx).refuse.append(MailError("TooManyRequestsException", "Maximum sending rate exceeded.", 429))
    campaigns.send_campaign(ctx, made["id"])
    deliver_sends(ctx)
    assert sorted(m.to for m in mailer(ctx).sent) == ["p0@example.com", "p1@example.com", "p3@example.com"]
    assert campaigns.get_campaign(ctx, made["id"])["status"] == "sent"


def test_a_spent_quota_pauses_the_campaign_with_the_reason(ctx):
    made = a_campaign(ctx, {"tag": "news"})
    mailer(ctx).refuse.append(MailError("LimitExceededException", "Daily message quota exceeded.", 400))
    campaigns.send_campaign(ctx, made["id"])
    deliver_sends(ctx)
    paused = campaigns.get_campaign(ctx, made["id"])
    assert paused["status"] == "paused" and "quota" in paused["status_reason"] and mailer(ctx).sent == []


def test_a_batch_from_the_dead_letter_queue_is_marked_failed_and_the_campaign_finishes(ctx):
    made = a_campaign(ctx, {"tag": "news"})
    campaigns.send_campaign(ctx, made["id"])
    for message in ctx.ports.queues.take(SEND_QUEUE):
        sending.build_audience(ctx, message["campaign_id"], message["shard"])
    for n, message in enumerate(ctx.ports.queues.take(SEND_QUEUE)):
        for _ in range(2):
            sending.fail_batch(ctx, message, f"dead-{n}")
    done = campaigns.get_campaign(ctx, made["id"])
    assert done["status"] == "sent" and done["stats"]["failed"] == 3 and mailer(ctx).sent == []


def test_an_ab_test_whose_test_takes_the_whole_audience_is_sent_only_once_its_winner_is_chosen(ctx):
    variants = [{"name": "A", "subject": "Hi", "text": "A"}, {"name": "B", "subject": "HI!", "text": "B"}]
    ab_test = {"test_percent": 50, "wait": "PT1H", "metric": "opens"}
    news = [c["id"] for c in contacts.list_contacts(ctx, {"tag": "news"}, 10, None)["items"]]
    for _ in range(200):  # a campaign whose 50 % test share happens to take all three recipients
        made = a_campaign(ctx, {"tag": "news"}, variants=variants, ab_test=ab_test)
        if all(ab_rules.assign(made["id"], c, ["A", "B"], 50).in_test for c in news):
            break
    else:
        pytest.fail("no campaign tested its whole audience")
    campaigns.send_campaign(ctx, made["id"])
    decisions = []
    while messages := ctx.ports.queues.take(SEND_QUEUE):
        for n, message in enumerate(messages):
            if message["kind"] == "audience":
                sending.build_audience(ctx, message["campaign_id"], message["shard"])
            elif message["kind"] == "batch":
                sending.send_batch(ctx, message, f"msg-{n}", sleep=lambda seconds: None)
            else:
                decisions.append(message)
    assert len(mailer(ctx).sent) == 3 and [d["kind"] for d in decisions] == ["ab_decide"]
    tested = campaigns.get_campaign(ctx, made["id"])
    assert (tested["status"], tested["winner"]) == ("sending", None)  # nobody held, but the test is not over

    later = datetime.now(UTC) + timedelta(hours=2)
    assert sending.decide_winner(ctx, made["id"], clock=lambda: later) in ("A", "B")
    done = campaigns.get_campaign(ctx, made["id"])
    assert done["status"] == "sent" and done["winner"] in ("A", "B") and len(mailer(ctx).sent) == 3


def test_a_scheduled_campaign_starts_once_when_it_is_due(ctx):
    at = datetime.now(UTC) + timedelta(hours=1)
    made = a_campaign(ctx, {"tag": "vip"}, send_at=to_rfc3339(at))
    assert campaigns.send_campaign(ctx, made["id"])["status"] == "scheduled"
    due = {ctx.tenant_id: ctx}.__getitem__

    def scheduled(before: str) -> list[tuple[str, str]]:
        return [(ctx.tenant_id, c.id) for c in ctx.ports.campaigns.all_campaigns()
                if c.status == "scheduled" and c.send_at and c.send_at <= before]  # fmt: skip

    assert campaigns.start_due(scheduled, due, lambda: at - timedelta(minutes=1)) == 0
    assert campaigns.start_due(scheduled, due, lambda: at + timedelta(seconds=5)) == 1
    assert campaigns.start_due(scheduled, due, lambda: at + timedelta(minutes=1)) == 0
    deliver_sends(ctx)
    assert sorted(m.to for m in mailer(ctx).sent) == ["p1@example.com", "p2@example.com"]


def test_a_test_send_goes_to_the_addresses_given_and_counts_nowhere(ctx):
    made = a_campaign(ctx, {"tag": "news"})
    ctx.ports.suppressions.suppress(Suppression("gone@example.com", "complaint", AT))
    result = campaigns.test_send(ctx, made["id"], {"emails": ["P1@example.com", "gone@example.com"]})
    assert [(r["email"], r["status"]) for r in result["items"]] == [("p1@example.com", "sent"),
                                                                    ("gone@example.com", "suppressed")]  # fmt: skip
    assert [m.subject for m in mailer(ctx).sent] == ["[Test] Hi P1"]  # as the contact with that address
    assert campaigns.get_campaign(ctx, made["id"])["stats"]["sent"] == 0
    with pytest.raises(ValidationFailed):
        campaigns.test_send(ctx, made["id"], {"emails": ["not an address"]})


# --- what SES says after sending: deliveries, opens, clicks ----------------------------------------------


@pytest.fixture
def sent(ctx):
    made = a_campaign(ctx, {"tag": "news"})
    campaigns.send_campaign(ctx, made["id"])
    deliver_sends(ctx)
    return ctx, made["id"], {m.to: m for m in mailer(ctx).sent}


def test_every_event_twice_shuffled_and_a_click_before_its_delivery_count_exactly(sent):
    ctx, campaign_id, mails = sent
    tags = {m.to: m.tags for m in mails.values()}
    p0, p1 = tags["p0@example.com"], tags["p1@example.com"]
    events = [
        ses("Click", "m-p0", p0, minutes_ago=1, link="https://example.com/a"),  # before its delivery, on purpose
        ses("Delivery", "m-p0", p0, minutes_ago=5),
        ses("Open", "m-p0", p0, minutes_ago=3),
        ses("Open", "m-p0", p0, minutes_ago=2),  # a second open of the same mail
        ses("Click", "m-p0", p0, minutes_ago=1, link="https://example.com/b"),
        ses("Delivery", "m-p1", p1, minutes_ago=5),
    ]
    delivered = events + events
    random.Random(3).shuffle(delivered)
    for body in delivered:
        suppressions.apply_ses_notification(lambda tenant_id: ctx, body)
    stats = campaigns.get_campaign(ctx, campaign_id)["stats"]
    assert {k: stats[k] for k in ("delivered", "opened", "clicked", "opens", "clicks")} == {
        "delivered": 2, "opened": 1, "clicked": 1, "opens": 2, "clicks": 2,
    }  # fmt: skip
    records = {r["email"]: r for r in campaigns.recipients(ctx, campaign_id, None, 10, None)["items"]}
    opens = [json.loads(e["Message"])["open"]["timestamp"] for e in events if '"Open"' in e["Message"]]
    assert records["p0@example.com"]["opened_at"] == min(opens)  # the earliest open, whatever came first
    assert records["p0@example.com"]["delivered_at"] and records["p1@example.com"]["opened_at"] is None
    p0_id = p0["contact_id"]
    stored = ctx.ports.contacts.events_of(ctx.ports.contacts.get_contact(p0_id), 50, None)[0]
    assert sorted(e["type"] for e in stored) == ["email.clicked"] * 2 + ["email.delivered"] + ["email.opened"] * 2
    opened_recently = {"event": "email.opened", "within": "30d", "agg": "count", "op": "gte", "value": 1}
    assert segments.preview(ctx, preview_from({"criteria": opened_recently}))["count"] == 1
    clicked_this = {"event": "email.clicked", "within": "30d", "agg": "count", "op": "gte", "value": 1,
                    "where": [{"prop": "campaign_id", "op": "eq", "value": campaign_id}]}  # fmt: skip
    assert segments.preview(ctx, preview_from({"criteria": clicked_this}))["count"] == 1
    delivered_none_opened = {"all": [{"event": "email.delivered", "within": "90d", "agg": "count", "op": "gte",
                             "value": 1}, {"not": opened_recently}]}  # fmt: skip
    assert segments.preview(ctx, preview_from({"criteria": delivered_none_opened}))["count"] == 1


def test_events_without_a_tenant_or_a_contact_change_nothing(sent):
    ctx, campaign_id, _ = sent
    suppressions.apply_ses_notification(lambda tenant_id: ctx, ses("Open", "m", {"campaign_id": campaign_id}))
    suppressions.apply_ses_notification(lambda tenant_id: ctx, ses("Open", "m", {"tenant_id": "t"}))
    assert campaigns.get_campaign(ctx, campaign_id)["stats"]["opens"] == 0
