"""An A/B-tested campaign to 1,000 recipients through the real send handlers (every message delivered twice,
shuffled): the test share gets its variants, the rest waits for the winner, the winner is recorded once
however many deciders race, every recipient gets exactly one mail, and the stats add up — across a pause."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.composition import tenant_context
from chalicelib.domain import ab_tests
from chalicelib.resources import SEND_QUEUE, SES_EVENTS_QUEUE
from chalicelib.services import sending
from chalicelib.services import tenants as tenant_service
from infra.local import mailbox as local_mailbox
from tests.integration.test_campaign_sending import audience_tenant
from tests.support import mail
from tests.support.queues import deliver, take_messages
from tests.support.ses_events import ses_notification

SEND = "send_campaign_messages"


@pytest.fixture(autouse=True)
def at_once(monkeypatch):
    monkeypatch.setattr(sending, "REQUEUE_DELAY_CAP", 0)
    monkeypatch.setattr(tenant_service, "SETTINGS_TTL_SECONDS", 0)
    monkeypatch.setattr(tenant_service, "_cached", {})  # the module fixture's send rate, not the default one


@pytest.fixture(scope="module")
def readers(api, app):
    return audience_tenant(api, app, 1_000, "ab")


def send_all(app, tenant, seed: int, times: int = 2) -> list[dict]:
    """Deliver the tenant's send messages ``times`` each, shuffled, until none is left; the decisions asked for
    (kept aside: they are due only once the wait is over)."""
    rng, decisions = random.Random(seed), []
    for _ in range(200):
        bodies = take_messages(SEND_QUEUE, tenant.id)
        decisions += [b for b in bodies if b["kind"] == "ab_decide"]
        work = [b for b in bodies if b["kind"] != "ab_decide"]
        if not work:
            return decisions
        rng.shuffle(work)
        for start in range(0, len(work), 5):
            deliver(app, SEND, SEND_QUEUE, work[start : start + 5], times=times, batch_size=5, seed=rng.randrange(99))
    raise AssertionError("sending did not settle")


def test_an_ab_test_sends_each_recipient_one_mail_and_the_rest_the_winner_chosen_once(api, app, readers):
    key = readers.admin_key
    variants = [
        {"name": "Plain", "subject": "Spring news", "text": "Hi {{ contact.first_name }}. {{ unsubscribe_url }}"},
        {"name": "Bold", "subject": "SPRING IS HERE", "text": "Hey {{ contact.first_name }}! {{ unsubscribe_url }}"},
    ]
    body = {"name": "A/B", "from": "news@example.com", "subject": "unused", "text": "unused",
            "segments": [readers.news], "variants": variants,
            "ab_test": {"test_percent": 20, "wait": "PT1H", "metric": "opens"}}  # fmt: skip
    created = api.post("/campaigns", key=key, json=body)
    assert created.status == 201, created.text
    campaign_id = created.json["id"]
    before = mail.mark()
    assert api.post(f"/campaigns/{campaign_id}/send", key=key).status == 200
    decisions = send_all(app, readers, seed=1)
    assert [d["kind"] for d in decisions] == ["ab_decide"]

    tested = Counter(m.to for m in mail.sent_since(before))
    assert max(tested.values()) == 1 and 160 <= len(tested) <= 240  # 20 % of 1,000
    view = api.get(f"/campaigns/{campaign_id}", key=key).json
    assert view["status"] == "sending" and view["winner"] is None
    by_variant = view["stats"]["variants"]
    assert by_variant["Plain"]["sent"] + by_variant["Bold"]["sent"] == len(tested) == view["stats"]["sent"]

    # every Bold recipient opens, no Plain one does (delivered twice, shuffled, through the real handler)
    sent = [m for m in local_mailbox.newest(readers.id, 5_000, None) if m["tags"].get("campaign_id") == campaign_id]
    opens = [
        ses_notification("Open", m["id"], {"tenant_id": readers.id, **m["tags"]}, minutes_ago=1)
        for m in sent
        if m["tags"]["variant"] == "Bold"
    ]
    assert deliver(app, "apply_ses_notifications", SES_EVENTS_QUEUE, opens, times=2) == []
    take_messages("segments-contact-changes-bulk")
    take_messages("segments-contact-changes")

    ctx = tenant_context(readers.id)
    assert sending.decide_winner(ctx, campaign_id) is None  # the wait is not over: it asks again later
    assert [d["kind"] for d in take_messages(SEND_QUEUE, readers.id)] == ["ab_decide"]
    assert api.post(f"/campaigns/{campaign_id}/pause", key=key).status == 200
    later = datetime.now(UTC) + timedelta(hours=2)
    assert sending.decide_winner(ctx, campaign_id, clock=lambda: later) is None  # paused: not yet
    take_messages(SEND_QUEUE, readers.id)
    assert api.post(f"/campaigns/{campaign_id}/resume", key=key).status == 200
    assert send_all(app, readers, seed=2) == []  # resuming sends none of the held rest
    assert Counter(m.to for m in mail.sent_since(before)) == tested

    recorded, together = [], threading.Barrier(3, timeout=30)
    original = ctx.ports.campaigns.record_winner

    def counting(*args):
        together.wait()  # all three deciders have read the campaign without a winner: a real race
        won = original(*args)
        recorded.append(won)
        return won

    ctx.ports.campaigns.record_winner = counting
    racers = [threading.Thread(target=sending.decide_winner, args=(ctx, campaign_id, lambda: later)) for _ in range(3)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert recorded.count(True) == 1 and len(recorded) == 3  # three deciders, one recorded choice
    send_all(app, readers, seed=3)

    everyone = [m for m in mail.sent_since(before)]
    per_address = Counter(m.to for m in everyone)
    assert len(per_address) == 1_000 and set(per_address.values()) == {1}  # exactly one mail each
    rest = [m for m in everyone if m.to not in tested]
    assert {m.subject for m in rest} == {"SPRING IS HERE"}  # the winner, Bold
    done = api.get(f"/campaigns/{campaign_id}", key=key).json
    assert (done["status"], done["winner"]) == ("sent", "Bold")
    stats = done["stats"]
    assert stats["sent"] == 1_000 and stats["audience"] == 1_000
    assert stats["variants"]["Bold"]["sent"] == by_variant["Bold"]["sent"] + len(rest)
    assert stats["variants"]["Plain"]["sent"] == by_variant["Plain"]["sent"]
    assert stats["variants"]["Bold"]["opened"] == stats["variants"]["Bold"]["opens"] == by_variant["Bold"]["sent"]
    assert stats["opened"] == by_variant["Bold"]["sent"] and stats["variants"]["Plain"]["opened"] == 0
    records = api.get(f"/campaigns/{campaign_id}/recipients?limit=500", key=key).json["items"]
    assert all(r.get("variant") in ("Plain", "Bold") for r in records)


def test_an_ab_test_needs_variants_that_render_and_a_wait_it_can_keep(api, readers):
    key = readers.admin_key
    base = {"name": "x", "from": "news@example.com", "subject": "s", "text": "t", "segments": [readers.news]}
    test = {"test_percent": 20, "wait": "PT1H", "metric": "clicks"}
    broken = [{"name": "A", "subject": "{{ contact.nope }}", "text": "t"}, {"name": "B", "subject": "b", "text": "t"}]
    for body, field in (
        ({**base, "variants": broken, "ab_test": test}, "variants[0].subject"),
        ({**base, "variants": [{"name": "A", "subject": "a"}, broken[1]], "ab_test": test}, "variants[0].html"),
        ({**base, "variants": broken[1:] * 2, "ab_test": test}, "variants"),
        ({**base, "variants": [*broken[1:], {**broken[1], "name": "C"}], "ab_test": {**test, "wait": "PT10S"}},
         "ab_test.wait"),
        ({**base, "ab_test": test}, "variants"),
    ):  # fmt: skip
        reply = api.post("/campaigns", key=key, json=body)
        assert (reply.status, reply.error_field) == (422, field), reply.text
    assert ab_tests.MAX_VARIANTS == 4


def test_each_variant_can_be_previewed_and_test_sent(api, readers):
    key = readers.admin_key
    variants = [
        {"name": "A", "subject": "Plain {{ contact.first_name }}", "text": "a {{ unsubscribe_url }}"},
        {"name": "B", "subject": "BOLD {{ contact.first_name }}", "text": "b {{ unsubscribe_url }}"},
    ]
    body = {"name": "Previewed", "from": "news@example.com", "subject": "unused", "text": "unused",
            "segments": [readers.news], "variants": variants,
            "ab_test": {"test_percent": 10, "wait": "PT1H", "metric": "opens"}}  # fmt: skip
    campaign = api.post("/campaigns", key=key, json=body).json
    preview = f"/campaigns/{campaign['id']}/preview"
    assert api.post(preview, key=key, json={"contact_id": "ab-1"}).json["subject"] == "Plain Name1"  # the first
    assert api.post(preview, key=key, json={"contact_id": "ab-1", "variant": "B"}).json["subject"] == "BOLD Name1"
    refused = api.post(preview, key=key, json={"contact_id": "ab-1", "variant": "C"})
    assert (refused.status, refused.error_field) == (422, "variant")
    before = mail.mark()
    sent = api.post(f"/campaigns/{campaign['id']}/test", key=key, json={"emails": ["me@example.com"], "variant": "B"})
    assert sent.status == 200 and [m.subject for m in mail.sent_since(before)] == ["[Test] BOLD Sample"]
    plain = api.post("/campaigns", key=key, json={**body, "name": "Plain", "variants": None, "ab_test": None}).json
    refused = api.post(f"/campaigns/{plain['id']}/preview", key=key, json={"contact_id": "ab-1", "variant": "A"})
    assert (refused.status, refused.error_field) == (422, "variant")
