"""Outbound webhooks on in-memory ports: the rules (domain/webhooks.py) and the service (services/webhooks.py) —
who hears what, signing, retries with backoff, the dead-letter queue, switching a failing endpoint off."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from chalicelib.domain import webhooks as rules
from chalicelib.domain.errors import LimitExceeded, ValidationFailed
from chalicelib.domain.webhooks import Attempt
from chalicelib.resources import WEBHOOKS_DEAD_LETTER_QUEUE, WEBHOOKS_QUEUE
from chalicelib.services import triggers, webhooks
from chalicelib.services.webhooks import Event
from tests.support.fakes import RecordingQueues, ScriptedTransport, fake_context

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("https://hooks.example.com/in?x=1", False),
        ("https://93.184.216.34:8443/in", False),
        ("http://127.0.0.1:9000/in", True),
        ("http://localhost:9000/in", True),
        ("https://[::1]/in", True),
        ("https://hooks.example.com/in", True),
    ],
)
def test_urls_an_endpoint_may_have(url, local):
    assert rules.check_url(url, local=local) == url


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://hooks.example.com/in", False),  # https only when deployed
        ("https://127.0.0.1/in", False),  # loopback only locally
        ("https://localhost/in", False),
        ("https://[::1]/in", False),
        ("https://10.1.2.3/in", True),  # private: never
        ("https://169.254.169.254/latest", True),  # metadata: never
        ("https://[fd00:ec2::254]/latest", True),
        ("https://[fe80::1]/in", True),
        ("https://0.0.0.0/in", True),
        ("https://u:p@hooks.example.com/in", True),
        ("https://hooks.example.com:70000/in", True),
        ("https://hooks.example.com/in#x", True),
        ("https://hooks.example.com/a b", True),
        ("ftp://hooks.example.com/in", True),
        ("//hooks.example.com/in", True),
    ],
)
def test_urls_refused_name_the_field(url, local):
    with pytest.raises(ValidationFailed) as refused:
        rules.check_url(url, local=local)
    assert refused.value.details["field"] == "url"


def test_who_hears_what():
    assert rules.hears(["email.*"], "email.clicked") and not rules.hears(["email.*"], "segment.entered")
    assert rules.hears(["*"], "reward.granted") and rules.hears(["trigger.fired"], "trigger.fired")
    assert not rules.hears(["segment.entered"], "segment.exited")


def test_retries_wait_longer_each_time_and_never_past_sqs_limit():
    assert [rules.retry_delay(n) for n in range(1, rules.MAX_ATTEMPTS)] == [30, 60, 120, 240, 480]
    assert rules.retry_delay(20) == 900


def verify(secret: str, headers: dict[str, str], body: bytes, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (the README shows it): recompute the HMAC over "<t>.<body>", compare in constant
    time, and refuse an old timestamp."""
    fields = dict(part.split("=", 1) for part in headers["Segments-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(now - int(fields["t"])) <= tolerance


def shop():
    ctx = fake_context("ten_1")
    made = {
        "mail": webhooks.create_webhook(ctx, {"url": "https://a.example.com/h", "events": ["email.*"]}, clock),
        "all": webhooks.create_webhook(ctx, {"url": "https://b.example.com/h", "events": ["*"]}, clock),
        "segments": webhooks.create_webhook(ctx, {"url": "https://c.example.com/h", "events": ["segment.entered"]}),
    }
    return ctx, made


def queues_of(ctx) -> RecordingQueues:
    assert isinstance(ctx.ports.queues, RecordingQueues)
    return ctx.ports.queues


def transport_of(ctx) -> ScriptedTransport:
    assert isinstance(ctx.ports.webhook_transport, ScriptedTransport)
    return ctx.ports.webhook_transport


def test_the_secret_is_shown_once_and_the_tenant_has_at_most_ten():
    ctx, made = shop()
    assert made["mail"]["secret"].startswith("whsec_") and made["mail"]["status"] == "enabled"
    assert "secret" not in webhooks.get_webhook(ctx, made["mail"]["id"])
    assert all("secret" not in item for item in webhooks.list_webhooks(ctx)["items"])
    for n in range(rules.MAX_ENDPOINTS - 3):
        webhooks.create_webhook(ctx, {"url": f"https://x{n}.example.com/", "events": ["*"]})
    with pytest.raises(LimitExceeded):
        webhooks.create_webhook(ctx, {"url": "https://one-more.example.com/", "events": ["*"]})


def test_an_event_goes_to_every_enabled_endpoint_that_hears_it_with_one_delivery_id_each():
    ctx, made = shop()
    webhooks.update_webhook(ctx, made["all"]["id"], {"enabled": False})
    ctx.__dict__.pop("webhooks", None)  # endpoints are read once per context (a request, a queue batch)
    events = [Event("ev1", "email.opened", "2026-12-01T09:00:00.000Z", {"contact_id": "c"}),
              Event("ev2", "segment.entered", "2026-12-01T09:00:01.000Z", {"segment_id": "s"})]  # fmt: skip
    assert webhooks.emit(ctx, events) == 2
    queued = queues_of(ctx).take(WEBHOOKS_QUEUE)
    assert {(m["webhook_id"], m["event"]["type"]) for m in queued} == {
        (made["mail"]["id"], "email.opened"), (made["segments"]["id"], "segment.entered"),
    }  # fmt: skip
    assert {m["delivery_id"] for m in queued} == {rules.delivery_id(m["webhook_id"], m["event"]["id"]) for m in queued}
    assert queued[0]["event"] == {"id": "ev1", "type": "email.opened", "created_at": "2026-12-01T09:00:00.000Z",
                                  "tenant_id": "ten_1", "data": {"contact_id": "c"}}  # fmt: skip
    assert webhooks.emit(ctx, events[1:], only=made["mail"]["id"]) == 1  # a trigger's webhook action


def deliver_until_done(ctx) -> list[int]:
    """Deliver what the queue holds, again and again, as SQS would once each delay passed; the delays asked."""
    delays = []
    original = ctx.ports.queues.send

    def send(queue_name, messages, delay_seconds=0):
        delays.append(delay_seconds) if queue_name == WEBHOOKS_QUEUE else None
        return original(queue_name, messages, delay_seconds)

    ctx.ports.queues.send = send
    while queued := queues_of(ctx).take(WEBHOOKS_QUEUE):
        for message in queued:
            webhooks.deliver(ctx, message, clock)
    return delays


def test_a_receiver_failing_three_times_then_answering_gets_the_event_once_per_delivery_id_signed():
    ctx, made = shop()
    clicked = Event("ev1", "email.clicked", "2026-12-01T09:00:00.000Z", {"link": "https://x"})
    webhooks.emit(ctx, [clicked], only=made["mail"]["id"])
    transport = transport_of(ctx)
    transport.answers = [Attempt(500, 12), Attempt(None, 5000, "no answer within 5 s"), Attempt(302, 4)]
    delays = deliver_until_done(ctx)
    assert delays == [30, 60, 120]  # the backoff
    requests = transport.requests
    assert len(requests) == 4 and {url for url, _, _ in requests} == {"https://a.example.com/h"}
    assert len({headers["Segments-Webhook-Id"] for _, _, headers in requests}) == 1
    assert all(verify(made["mail"]["secret"], headers, body, int(NOW.timestamp())) for _, body, headers in requests)
    assert not verify(made["all"]["secret"], requests[0][2], requests[0][1], int(NOW.timestamp()))
    assert json.loads(requests[0][1])["type"] == "email.clicked"
    (line,) = webhooks.deliveries(ctx, made["mail"]["id"], 10, None)["items"]
    assert (line["status"], line["attempts"], line["response_status"], line["error"]) == ("delivered", 4, 200, None)
    assert webhooks.get_webhook(ctx, made["mail"]["id"])["failures_in_a_row"] == 0


def test_a_receiver_that_always_fails_ends_in_the_dead_letter_queue_and_is_switched_off_with_the_reason():
    ctx, made = shop()
    transport = transport_of(ctx)
    for n in range(rules.DISABLE_AFTER):
        transport.answers = [Attempt(503, 7)] * rules.MAX_ATTEMPTS
        ctx.__dict__.pop("webhooks", None)
        webhooks.emit(
            ctx, [Event(f"ev{n}", "email.opened", f"2026-12-01T09:00:0{n}.000Z", {})], only=made["mail"]["id"]
        )
        deliver_until_done(ctx)
        lines = webhooks.deliveries(ctx, made["mail"]["id"], 10, None)["items"]
        assert lines[0]["status"] == "failed" and lines[0]["attempts"] == rules.MAX_ATTEMPTS
    dead = queues_of(ctx).take(WEBHOOKS_DEAD_LETTER_QUEUE)
    assert [m["event"]["id"] for m in dead] == [f"ev{n}" for n in range(rules.DISABLE_AFTER)]
    endpoint = webhooks.get_webhook(ctx, made["mail"]["id"])
    assert endpoint["status"] == "disabled" and "HTTP 503" in endpoint["disabled_reason"]
    assert endpoint["failures_in_a_row"] == rules.DISABLE_AFTER
    calls = len(transport.requests)
    assert webhooks.deliver(ctx, dead[0], clock) is None and len(transport.requests) == calls  # off: dropped
    test = webhooks.send_test(ctx, made["mail"]["id"], clock)  # a test event still goes, to see it work again
    assert (test["type"], test["status"], test["attempts"]) == ("webhook.test", "delivered", 1)
    assert webhooks.update_webhook(ctx, made["mail"]["id"], {"enabled": True})["failures_in_a_row"] == 0


def test_a_delivered_event_forgets_earlier_failures():
    ctx, made = shop()
    transport = transport_of(ctx)
    transport.answers = [Attempt(500, 1)] * rules.MAX_ATTEMPTS
    webhooks.emit(ctx, [Event("ev1", "email.opened", "2026-12-01T09:00:00.000Z", {})], only=made["mail"]["id"])
    deliver_until_done(ctx)
    assert webhooks.get_webhook(ctx, made["mail"]["id"])["failures_in_a_row"] == 1
    webhooks.emit(ctx, [Event("ev2", "email.opened", "2026-12-01T09:00:01.000Z", {})], only=made["mail"]["id"])
    deliver_until_done(ctx)
    assert webhooks.get_webhook(ctx, made["mail"]["id"])["failures_in_a_row"] == 0


def test_a_trigger_posts_only_to_an_endpoint_that_exists():
    ctx, made = shop()
    body = {"name": "Tell the CRM", "event": {"type": "contact.created"},
            "actions": [{"type": "webhook", "webhook_id": made["all"]["id"]}]}  # fmt: skip
    assert triggers.create_trigger(ctx, body)["actions"] == body["actions"]
    missing = {**body, "name": "Nowhere", "actions": [{"type": "webhook", "webhook_id": "whk_gone"}]}
    with pytest.raises(ValidationFailed) as refused:
        triggers.create_trigger(ctx, missing)
    assert refused.value.details["field"] == "actions[0].webhook_id"
