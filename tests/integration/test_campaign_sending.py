"""Sending campaigns: exactly once under redelivery, throttling, pause/resume/cancel, crashes, caps and feedback."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from chalicelib.ports.mailer import Mail, MailError
from chalicelib.resources import SEND_QUEUE, SES_EVENTS_QUEUE
from chalicelib.services import sending
from chalicelib.services import tenants as tenant_service
from chalicelib.storage import mailer
from chalicelib.storage.sends import SendTable
from infra.local import mailbox as local_mailbox
from tests.support import mail
from tests.support.population import import_and_wait
from tests.support.queues import deliver, drain, sqs_event, take_messages
from tests.support.ses_events import ses_notification
from tests.support.tenants import create_tenant

SEND = "send_campaign_messages"
AUDIENCE = 1_000


def people_csv(count: int, prefix: str, tags: str = "news") -> str:
    rows = "".join(
        f"{prefix}-{i},{prefix}{i}@example.com,{tags}{';vip' if i % 10 == 0 else ''},Name{i}\n" for i in range(count)
    )
    return "external_id,email,tags,first_name\n" + rows


def make_segment(api, app, tenant, criteria, name) -> str:
    reply = api.post("/segments", key=tenant.admin_key, json={"name": name, "criteria": criteria})
    assert reply.status == 201, reply.text
    drain(app)
    return reply.json["id"]


def audience_tenant(api, app, count: int, prefix: str):
    tenant = create_tenant(api, f"Campaigns {prefix}")
    for tag in ("news", "vip"):
        assert api.post("/tags", key=tenant.admin_key, json={"name": tag}).status == 201
    assert import_and_wait(api, app, tenant.admin_key, people_csv(count, prefix))["status"] == "succeeded"
    take_messages("segments-contact-changes", tenant.id)  # membership of new contacts: evaluations cover them
    fast = {"send_rate_per_second": 1000}
    assert api.patch("/settings", key=tenant.admin_key, json=fast).status == 200
    tenant.news = make_segment(api, app, tenant, {"tag": "news"}, "Newsletter")
    tenant.vip = make_segment(api, app, tenant, {"tag": "vip"}, "VIP")
    return tenant


@pytest.fixture(scope="module")
def thousand(api, app):
    return audience_tenant(api, app, AUDIENCE, "k")


@pytest.fixture(autouse=True)
def requeue_without_delay(monkeypatch):
    monkeypatch.setattr(sending, "REQUEUE_DELAY_CAP", 0)
    monkeypatch.setattr(tenant_service, "SETTINGS_TTL_SECONDS", 0)  # settings changed by a test apply at once
    monkeypatch.setattr(tenant_service, "_cached", {})  # ... even those a module's fixture cached before


def new_campaign(api, tenant, **overrides) -> dict:
    body = {
        "name": "Spring",
        "from": "news@example.com",
        "subject": "Hello {{ contact.first_name }}",
        "html": "<p>Hi {{ contact.first_name }}</p><a href='{{ unsubscribe_url }}'>unsubscribe</a>",
        "text": "Hi {{ contact.first_name }}. Unsubscribe: {{ unsubscribe_url }}",
        "segments": [tenant.news],
        **overrides,
    }
    reply = api.post("/campaigns", key=tenant.admin_key, json=body)
    assert reply.status == 201, reply.text
    return reply.json


def start(api, tenant, campaign_id) -> dict:
    reply = api.post(f"/campaigns/{campaign_id}/send", key=tenant.admin_key)
    assert reply.status == 200, reply.text
    return reply.json


def campaign(api, tenant, campaign_id) -> dict:
    return api.get(f"/campaigns/{campaign_id}", key=tenant.viewer_key).json


def deliver_concurrently(app, body: dict, copies: int) -> list[str]:
    failed: list[str] = []

    def one() -> None:
        result = app.handler_map[SEND](sqs_event([body], SEND_QUEUE), None) or {}
        failed.extend(f["itemIdentifier"] for f in result.get("batchItemFailures", []))

    threads = [threading.Thread(target=one) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failed


def run_sends(
    app, tenant, *, times: int = 1, concurrent_share: float = 0.0, seed: int = 3, stop=None, max_rounds: int = 500
) -> None:
    """Deliver the tenant's send messages until none is left: each ``times`` times, shuffled, a share of them three
    times at once on threads. A message whose handler failed is delivered again later, as SQS would.
    ``stop()`` is asked before each group of five messages."""
    rng = random.Random(seed)
    retry: list[dict] = []
    for _ in range(max_rounds):
        bodies = take_messages(SEND_QUEUE, tenant.id) + retry
        if not bodies:
            return
        retry = []
        for start_at in range(0, len(bodies), 5):
            if stop is not None and stop():
                return
            group = bodies[start_at : start_at + 5]
            failed = deliver(app, SEND, SEND_QUEUE, group, times=times, batch_size=5, seed=rng.randrange(1000))
            for body in group:
                if rng.random() < concurrent_share:
                    deliver_concurrently(app, body, 3)
            if failed:
                retry += [b for b in group if b.get("kind") == "audience"]  # a busy audience shard comes back
    raise AssertionError("sending did not settle")


def assert_exactly_once(sent: list[mail.SentMail], expected: set[str]) -> None:
    counts = Counter(m.to for m in sent)
    assert [a for a, n in counts.items() if n > 1] == []
    assert set(counts) == expected


def addresses(prefix: str, count: int, skip=lambda i: False) -> set[str]:
    return {f"{prefix}{i}@example.com" for i in range(count) if not skip(i)}


def records_agree_with_stats(tenant_id: str, campaign_id: str, stats: dict) -> None:
    records = Counter(r.state for r in SendTable(tenant_id).all_send_records(campaign_id))
    for state in ("sent", "failed", "suppressed", "unsubscribed", "capped", "skipped", "bounced", "complained"):
        assert records.get(state, 0) == stats[state], (state, records, stats)
    assert records.get("claimed", 0) == stats["unknown"] + stats["in_flight"]


# --- the guarantees ------------------------------------------------------------------------------------


def test_every_message_delivered_twice_shuffled_and_some_thrice_at_once_sends_each_recipient_once(api, app, thousand):
    created = new_campaign(api, thousand)
    before = mail.mark()
    assert start(api, thousand, created["id"])["status"] == "sending"
    run_sends(app, thousand, times=2, concurrent_share=0.1)

    sent = mail.sent_since(before)
    assert len(sent) == AUDIENCE
    assert_exactly_once(sent, addresses("k", AUDIENCE))
    done = campaign(api, thousand, created["id"])
    assert done["status"] == "sent"
    assert done["stats"]["audience"] == AUDIENCE and done["stats"]["sent"] == AUDIENCE
    assert done["stats"]["unknown"] == 0 and done["stats"]["pending"] == 0
    records_agree_with_stats(thousand.id, created["id"], done["stats"])
    progress = done["progress"]
    assert progress["audience_shards_built"] == progress["audience_shards_total"] == 16
    assert progress["batches_done"] == progress["batches_total"]
    assert -(-AUDIENCE // 49) <= progress["batches_total"] <= -(-AUDIENCE // 49) + 16  # ≤49 a batch, per shard

    one = next(m for m in sent if m.to == "k7@example.com")
    assert one.subject == "Hello Name7"
    assert one.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = one.headers["List-Unsubscribe"].strip("<>")
    assert url.startswith("http://127.0.0.1:8000/unsubscribe/") and url in one.html and url in one.text


def test_ses_throttling_a_third_of_calls_still_sends_everyone_once(api, app, thousand, monkeypatch):
    real = mailer.send_email
    rng = random.Random(5)
    throttled = Counter()

    def flaky(message: Mail) -> str:
        if rng.random() < 0.3:
            throttled["calls"] += 1
            raise MailError("TooManyRequestsException", "Maximum sending rate exceeded.", 429)
        return real(message)

    monkeypatch.setattr(mailer, "send_email", flaky)
    created = new_campaign(api, thousand, exclude_segments=[thousand.vip])
    before = mail.mark()
    start(api, thousand, created["id"])
    run_sends(app, thousand, concurrent_share=0.1)  # one throttled delivery already re-queues its rest

    expected = addresses("k", AUDIENCE, skip=lambda i: i % 10 == 0)
    assert_exactly_once(mail.sent_since(before), expected)
    assert throttled["calls"] > 100
    done = campaign(api, thousand, created["id"])
    assert done["status"] == "sent"
    assert (done["stats"]["audience"], done["stats"]["sent"], done["stats"]["unknown"]) == (900, 900, 0)
    records_agree_with_stats(thousand.id, created["id"], done["stats"])


def test_pause_at_forty_percent_then_resume_sends_everyone_once_and_cancel_stops_sending(api, app, thousand):
    created = new_campaign(api, thousand)
    before = mail.mark()
    start(api, thousand, created["id"])
    run_sends(app, thousand, stop=lambda: len(mail.sent_since(before)) >= 0.4 * AUDIENCE)
    paused = api.post(f"/campaigns/{created['id']}/pause", key=thousand.admin_key)
    assert paused.status == 200 and paused.json["status"] == "paused"
    at_pause = len(mail.sent_since(before))
    assert 0.4 * AUDIENCE <= at_pause < AUDIENCE
    run_sends(app, thousand, times=2)  # what was queued meets a paused campaign
    assert len(mail.sent_since(before)) == at_pause
    assert api.post(f"/campaigns/{created['id']}/pause", key=thousand.admin_key).status == 409

    assert api.post(f"/campaigns/{created['id']}/resume", key=thousand.admin_key).json["status"] == "sending"
    run_sends(app, thousand, times=2)
    assert_exactly_once(mail.sent_since(before), addresses("k", AUDIENCE))
    assert campaign(api, thousand, created["id"])["status"] == "sent"

    cancelled = new_campaign(api, thousand, name="Cancelled")
    before = mail.mark()
    start(api, thousand, cancelled["id"])
    run_sends(app, thousand, stop=lambda: len(mail.sent_since(before)) >= 200)
    assert api.post(f"/campaigns/{cancelled['id']}/cancel", key=thousand.admin_key).json["status"] == "cancelled"
    at_cancel = len(mail.sent_since(before))
    run_sends(app, thousand, times=2)
    assert len(mail.sent_since(before)) == at_cancel
    assert api.post(f"/campaigns/{cancelled['id']}/resume", key=thousand.admin_key).status == 409
    stats = campaign(api, thousand, cancelled["id"])["stats"]
    assert stats["sent"] == at_cancel and stats["pending"] == AUDIENCE - at_cancel


@pytest.fixture
def small(api, app):
    return audience_tenant(api, app, 60, "s")


def test_recipients_a_throttled_delivery_released_are_mailed_even_if_a_duplicate_finished_the_campaign(
    api, app, monkeypatch
):
    """Two deliveries of one batch at once: the first claims everyone and is throttled part-way; the second
    lands no claim, marks the batch done and, the other batches being done, the campaign sent. The first
    delivery's released recipients still get their mail, once (the continuation claims into a sent campaign)."""
    tenant = audience_tenant(api, app, 40, "r")
    created = new_campaign(api, tenant)
    before = mail.mark()
    start(api, tenant, created["id"])
    deliver(app, SEND, SEND_QUEUE, take_messages(SEND_QUEUE, tenant.id))  # the audience: one batch a shard
    batches = take_messages(SEND_QUEUE, tenant.id)
    (target,) = [b for b in batches if len(b["recipients"]) == max(len(x["recipients"]) for x in batches)][:1]
    assert len(target["recipients"]) >= 2
    assert deliver(app, SEND, SEND_QUEUE, [b for b in batches if b is not target]) == []
    second = target["recipients"][1][1]
    real, duplicate_ran = mailer.send_email, []

    def throttle_the_second_after_a_duplicate_ran(message: Mail) -> str:
        if message.to == second and not duplicate_ran:
            duplicate_ran.append(deliver(app, SEND, SEND_QUEUE, [target]))  # lands no claim: all are held
            assert campaign(api, tenant, created["id"])["status"] == "sent"  # finished meanwhile
            raise MailError("TooManyRequestsException", "Maximum sending rate exceeded.", 429)
        return real(message)

    monkeypatch.setattr(mailer, "send_email", throttle_the_second_after_a_duplicate_ran)
    assert deliver(app, SEND, SEND_QUEUE, [target]) == []
    run_sends(app, tenant)  # the continuation with the released recipients
    expected = {email for _, email in target["recipients"]}
    assert_exactly_once([m for m in mail.sent_since(before) if m.to in expected], expected)
    done = campaign(api, tenant, created["id"])["stats"]
    assert (done["sent"], done["unknown"]) == (done["audience"], 0)


def test_a_crash_between_claim_and_ses_answer_is_unknown_and_never_resent(api, app, small, monkeypatch):
    real = mailer.send_email
    calls = Counter()

    def crashing(message: Mail) -> str:
        calls[message.to] += 1
        if message.to == "s5@example.com":
            raise MailError("InternalFailure", "We encountered an internal error.", 500)
        if message.to == "s6@example.com" and calls[message.to] == 1:
            real(message)
            raise RuntimeError("the worker died right after SES accepted the message")
        return real(message)

    monkeypatch.setattr(mailer, "send_email", crashing)
    created = new_campaign(api, small)
    before = mail.mark()
    start(api, small, created["id"])
    for _ in range(30):  # the failed batch comes back, as SQS would redeliver it
        bodies = take_messages(SEND_QUEUE, small.id)
        if not bodies:
            break
        for body in bodies:
            deliver(app, SEND, SEND_QUEUE, [body])
            if body.get("kind") == "batch" and any(e == "s6@example.com" for _, e in body["recipients"]):
                deliver(app, SEND, SEND_QUEUE, [body], times=2)

    sent = mail.sent_since(before)
    assert [a for a, n in Counter(m.to for m in sent).items() if n > 1] == []
    assert calls["s5@example.com"] == 1 and calls["s6@example.com"] == 1
    done = campaign(api, small, created["id"])
    assert done["status"] == "sent"
    stats = done["stats"]
    # s5 (no answer) and every claim of s6's batch (the worker died) are unknown; nobody is mailed again
    assert stats["unknown"] >= 2 and stats["sent"] + stats["unknown"] == 60
    assert stats["sent"] + 1 <= len(sent) <= stats["sent"] + stats["unknown"]
    records_agree_with_stats(small.id, created["id"], stats)


def test_a_rejected_recipient_fails_alone_and_a_spent_quota_pauses_with_the_reason(api, app, small, monkeypatch):
    real = mailer.send_email
    quota = {"left": 20}

    def picky(message: Mail) -> str:
        if message.to == "s3@example.com":
            raise MailError("MessageRejected", "Email address is not verified.", 400)
        if quota["left"] == 0:
            raise MailError("Throttling", "Daily message quota exceeded.", 400)
        quota["left"] -= 1
        return real(message)

    monkeypatch.setattr(mailer, "send_email", picky)
    created = new_campaign(api, small)
    before = mail.mark()
    start(api, small, created["id"])
    run_sends(app, small, times=2)
    paused = campaign(api, small, created["id"])
    assert paused["status"] == "paused" and "quota" in paused["status_reason"]
    assert len(mail.sent_since(before)) == 20

    quota["left"] = 1_000
    assert api.post(f"/campaigns/{created['id']}/resume", key=small.admin_key).status == 200
    run_sends(app, small, times=2)
    done = campaign(api, small, created["id"])
    assert done["status"] == "sent"
    assert_exactly_once(mail.sent_since(before), addresses("s", 60, skip=lambda i: i == 3))
    assert (done["stats"]["sent"], done["stats"]["failed"], done["stats"]["unknown"]) == (59, 1, 0)
    records_agree_with_stats(small.id, created["id"], done["stats"])
    failed = api.get(f"/campaigns/{created['id']}/recipients?status=failed", key=small.viewer_key).json["items"]
    assert [(r["email"], r["reason"].split(":")[0]) for r in failed] == [("s3@example.com", "MessageRejected")]


def test_suppressed_unsubscribed_and_capped_addresses_receive_nothing(api, app, small):
    api.post("/suppressions", key=small.admin_key, json={"email": "S1@Example.com"})
    first = new_campaign(api, small, name="First")
    before = mail.mark()
    start(api, small, first["id"])
    run_sends(app, small)
    sent = {m.to: m for m in mail.sent_since(before)}
    assert "s1@example.com" not in sent and len(sent) == 59
    header = sent["s2@example.com"].headers["List-Unsubscribe"]
    assert "=?" not in header  # a plain URL, not encoded words
    token = header.strip("<>").rsplit("/", 1)[1]
    token_page = api.get(f"/unsubscribe/{token}")
    assert token_page.status == 200 and "<form" in token_page.text
    assert api.get("/suppressions?limit=500", key=small.viewer_key).json["items"][0]["email"] == "s1@example.com"
    assert api.post(f"/unsubscribe/{token}", body="List-Unsubscribe=One-Click",
                    headers={"content-type": "application/x-www-form-urlencoded"}).status == 200  # fmt: skip

    assert (
        api.patch("/settings", key=small.admin_key, json={"frequency_cap": {"max_emails": 1, "per_days": 7}}).status
        == 200
    )
    second = new_campaign(api, small, name="Second")
    before = mail.mark()
    start(api, small, second["id"])
    run_sends(app, small, times=2)
    assert mail.sent_since(before) == []
    stats = campaign(api, small, second["id"])["stats"]
    assert (stats["suppressed"], stats["unsubscribed"], stats["capped"], stats["sent"]) == (1, 1, 58, 0)
    records_agree_with_stats(small.id, second["id"], stats)
    capped = api.get(f"/campaigns/{second['id']}/recipients?status=capped&limit=500", key=small.viewer_key).json
    assert len(capped["items"]) == 58


def test_bounces_and_complaints_from_the_ses_simulator_suppress_and_count(api, app):
    tenant = create_tenant(api, "Feedback")
    assert api.post("/tags", key=tenant.admin_key, json={"name": "news"}).status == 201
    text = (
        "external_id,email,tags\nb,bounce@simulator.amazonses.com,news\n"
        "c,complaint@simulator.amazonses.com,news\nok,success@simulator.amazonses.com,news\n"
    )
    import_and_wait(api, app, tenant.admin_key, text)
    tenant.news = make_segment(api, app, tenant, {"tag": "news"}, "News")
    created = new_campaign(api, tenant)
    start(api, tenant, created["id"])
    run_sends(app, tenant)
    notifications = take_messages(SES_EVENTS_QUEUE)
    assert len(notifications) == 2
    assert deliver(app, "apply_ses_notifications", SES_EVENTS_QUEUE, notifications, times=2) == []
    stats = campaign(api, tenant, created["id"])["stats"]
    assert (stats["sent"], stats["bounced"], stats["complained"]) == (3, 1, 1)
    reasons = {s["email"]: s["reason"] for s in api.get("/suppressions", key=tenant.viewer_key).json["items"]}
    assert reasons == {"bounce@simulator.amazonses.com": "bounce", "complaint@simulator.amazonses.com": "complaint"}
    assert api.delete("/suppressions/bounce@simulator.amazonses.com", key=tenant.admin_key).status == 204


def test_deliveries_opens_and_clicks_count_once_and_become_contact_events(api, app):
    tenant = create_tenant(api, "Engagement")
    assert api.post("/tags", key=tenant.admin_key, json={"name": "news"}).status == 201
    import_and_wait(api, app, tenant.admin_key, "external_id,email,tags\na,a@example.com,news\nb,b@example.com,news\n")
    tenant.news = make_segment(api, app, tenant, {"tag": "news"}, "News")
    created = new_campaign(api, tenant)
    start(api, tenant, created["id"])
    run_sends(app, tenant)
    sent = {mail["to"]: mail for mail in local_mailbox.newest(tenant.id, 10, None)}  # what SES accepted, tagged
    a, b = sent["a@example.com"], sent["b@example.com"]
    tags = {mail["to"]: {"tenant_id": tenant.id, **mail["tags"]} for mail in (a, b)}
    notifications = [
        ses_notification("Click", a["id"], tags["a@example.com"], minutes_ago=1, link="https://example.com/x"),
        ses_notification("Delivery", a["id"], tags["a@example.com"], minutes_ago=3),
        ses_notification("Open", a["id"], tags["a@example.com"], minutes_ago=2),
        ses_notification("Delivery", b["id"], tags["b@example.com"], minutes_ago=3),
    ]
    assert deliver(app, "apply_ses_notifications", SES_EVENTS_QUEUE, notifications, times=2) == []
    stats = campaign(api, tenant, created["id"])["stats"]
    assert {k: stats[k] for k in ("sent", "delivered", "opened", "clicked", "opens", "clicks")} == {
        "sent": 2, "delivered": 2, "opened": 1, "clicked": 1, "opens": 1, "clicks": 1,
    }  # fmt: skip
    recipients = api.get(f"/campaigns/{created['id']}/recipients", key=tenant.viewer_key).json["items"]
    opened = {r["email"]: r["opened_at"] for r in recipients}
    assert opened["a@example.com"] and opened["b@example.com"] is None
    events = api.get("/contacts/a/events", key=tenant.viewer_key).json["items"]
    assert sorted(e["type"] for e in events) == ["email.clicked", "email.delivered", "email.opened"]
    click = next(e for e in events if e["type"] == "email.clicked")
    assert click["properties"] == {"campaign_id": created["id"], "link": "https://example.com/x"}
    drain(app)
    delivered = {"event": "email.delivered", "within": "90d", "agg": "count", "op": "gte", "value": 1}
    opened_any = {"event": "email.opened", "within": "30d", "agg": "count", "op": "gte", "value": 1}
    criteria = {"all": [delivered, {"not": opened_any}]}  # "delivered, and opened nothing in 30 days"
    preview = api.post("/segments/preview", key=tenant.viewer_key, json={"criteria": criteria}).json
    assert [c["external_id"] for c in preview["sample"]] == ["b"]


def test_the_tenant_send_rate_holds_across_workers(api, app, small, monkeypatch):
    import time

    assert api.patch("/settings", key=small.admin_key, json={"send_rate_per_second": 20}).status == 200
    real = mailer.send_email
    stamps: list[float] = []

    def timed(message: Mail) -> str:
        stamps.append(time.time())
        return real(message)

    monkeypatch.setattr(mailer, "send_email", timed)
    monkeypatch.setattr(sending, "REQUEUE_DELAY_CAP", 1)
    created = new_campaign(api, small)
    started = time.time()
    start(api, small, created["id"])
    bodies = take_messages(SEND_QUEUE, small.id)
    deliver(app, SEND, SEND_QUEUE, bodies)
    for _ in range(40):
        batches = take_messages(SEND_QUEUE, small.id)
        if not batches and campaign(api, small, created["id"])["status"] == "sent":
            break
        threads = [threading.Thread(target=deliver, args=(app, SEND, SEND_QUEUE, [b])) for b in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(0.2)
    assert len(stamps) == 60
    # each send waits for its own slot, slots are 1/20 s apart and none starts before the campaign did:
    # however the workers interleave, the k-th send cannot come before started + k/20
    stamps.sort()
    assert all(t >= started + k / 20 - 0.005 for k, t in enumerate(stamps))
    assert stamps[-1] - started >= 59 / 20


def test_send_slots_start_now_when_the_lane_is_idle_follow_it_when_busy_and_refuse_past_the_horizon(small):
    tenant_id = small.id
    now = 1_000_000
    assert SendTable(tenant_id).reserve_send_slots(10, 100, now, max_ahead_ms=500) == now  # 10 at 100/s: 100 ms
    assert SendTable(tenant_id).reserve_send_slots(20, 100, now + 50, max_ahead_ms=500) == now + 100
    assert SendTable(tenant_id).reserve_send_slots(50, 100, now + 50, max_ahead_ms=500) == now + 300
    # the lane now ends at now + 800: more than 500 ms ahead of now + 50, so nothing is reserved ...
    assert SendTable(tenant_id).reserve_send_slots(5, 100, now + 50, max_ahead_ms=500) is None
    assert SendTable(tenant_id).reserve_send_slots(5, 100, now + 300, max_ahead_ms=500) == now + 800
    # ... and once it has run out, the next reservation starts at its own now again
    assert SendTable(tenant_id).reserve_send_slots(1, 100, now + 5_000, max_ahead_ms=500) == now + 5_000
