"""Outbound webhooks through the real routes, queue handlers and HTTP, to receivers on loopback only: signed
deliveries of what happened, retries that reach a flaky receiver once per delivery id, the dead-letter queue
and the switch-off of one that keeps failing, redirects and private addresses refused, fast timeouts, the
trigger action, and each tenant seeing only its own endpoints."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.domain import webhooks as rules
from chalicelib.resources import WEBHOOKS_DEAD_LETTER_QUEUE, WEBHOOKS_QUEUE
from chalicelib.services import mail
from chalicelib.services import tenants as tenant_service
from chalicelib.storage.webhook_transport import HttpWebhookTransport
from tests.support.queues import deliver, drain, take_messages
from tests.support.tenants import create_tenant


class Receiver:
    """An HTTP receiver on 127.0.0.1 that answers as scripted per path (then 200) and keeps every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.script: dict[str, list[int]] = {}
        self.slow: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name for it
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.path, dict(self.headers), body))
                if self.path in receiver.slow:
                    time.sleep(1.5)
                answers = receiver.script.get(self.path) or [200]
                status = answers.pop(0) if len(answers) > 1 or self.path in receiver.script else answers[0]
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[tuple[dict[str, str], dict]]:
        return [(headers, json.loads(body)) for p, headers, body in self.requests if p == path]


@pytest.fixture(scope="module")
def receiver():
    started = Receiver()
    yield started
    started.server.shutdown()


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(rules, "retry_delay", lambda attempt: 0)  # SQS would wait 30 s, 1 min, 2 min …
    monkeypatch.setattr(tenant_service, "SETTINGS_TTL_SECONDS", 0)


def signed_by(secret: str, headers: dict[str, str], body: dict) -> bool:
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    fields = dict(part.split("=", 1) for part in headers["Segments-Signature"].split(","))
    digest = hmac.new(secret.encode(), f"{fields['t']}.".encode() + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest, fields["v1"]) and abs(time.time() - int(fields["t"])) < 300


def register(api, tenant, url: str, events: list[str]) -> dict:
    reply = api.post("/webhooks", key=tenant.admin_key, json={"url": url, "events": events, "description": "CRM"})
    assert reply.status == 201, reply.text
    return reply.json


def test_endpoints_are_registered_read_changed_and_deleted_and_the_secret_is_shown_once(api, new_tenant):
    tenant = new_tenant("Hooks")
    made = register(api, tenant, "http://127.0.0.1:9/in", ["email.*", "segment.entered"])
    assert made["secret"].startswith("whsec_") and made["key_id"].startswith("wsk_") and made["status"] == "enabled"
    read = api.get(f"/webhooks/{made['id']}", key=tenant.admin_key).json
    assert "secret" not in read and read["events"] == ["email.*", "segment.entered"]
    assert [w["id"] for w in api.get("/webhooks", key=tenant.admin_key).json["items"]] == [made["id"]]
    changed = api.patch(f"/webhooks/{made['id']}", key=tenant.admin_key, json={"events": ["*"], "enabled": False})
    assert (changed.json["events"], changed.json["status"], changed.json["version"]) == (["*"], "disabled", 2)
    for body, field in (({"url": "https://10.0.0.1/x", "events": ["*"]}, "url"),
                        ({"url": "http://127.0.0.1/x", "events": ["email.bounced"]}, "events[0]"),
                        ({"url": "http://127.0.0.1/x"}, "events")):  # fmt: skip
        refused = api.post("/webhooks", key=tenant.admin_key, json=body)
        assert (refused.status, refused.error_field) == (422, field), refused.text
    assert api.get(f"/webhooks/{made['id']}/deliveries", key=tenant.admin_key).json["items"] == []
    assert api.delete(f"/webhooks/{made['id']}", key=tenant.admin_key).status == 204
    assert api.get(f"/webhooks/{made['id']}", key=tenant.admin_key).status == 404


def test_a_key_of_one_tenant_never_reads_or_changes_another_tenants_endpoints(api, new_tenant):
    owner, other = new_tenant("Owner"), new_tenant("Other")
    made = register(api, owner, "http://127.0.0.1:9/in", ["*"])
    calls = (("GET", "", None), ("PATCH", "", {"description": "mine"}), ("DELETE", "?confirm=true", None),
             ("GET", "/deliveries", None), ("POST", "/test", None))  # fmt: skip
    for method, path, body in calls:
        reply = api.request(method, f"/webhooks/{made['id']}{path}", key=other.admin_key, json=body)
        assert reply.status == 404, (method, path, reply.text)
    assert api.get("/webhooks", key=other.admin_key).json["items"] == []
    assert api.get(f"/webhooks/{made['id']}", key=owner.admin_key).json["description"] == "CRM"


def test_what_happens_reaches_the_endpoints_that_hear_it_signed_with_a_stable_delivery_id(api, app, receiver):
    tenant = create_tenant(api, "Reported")
    assert api.post("/tags", key=tenant.admin_key, json={"name": "vip"}).status == 201
    segment = api.post("/segments", key=tenant.admin_key, json={"name": "VIP", "criteria": {"tag": "vip"}}).json
    drain(app)
    hook = register(api, tenant, receiver.url("/segments"), ["segment.entered"])
    everything = register(api, tenant, receiver.url("/all"), ["*"])
    assert api.post("/contacts", key=tenant.admin_key, json={"external_id": "ana", "tags": ["vip"]}).status == 201
    drain(app)
    ((headers, body),) = receiver.at("/segments")
    assert set(body) == {"id", "type", "created_at", "tenant_id", "data"}
    assert (body["type"], body["tenant_id"], body["data"]["segment_id"]) == (
        "segment.entered",
        tenant.id,
        segment["id"],
    )
    assert headers["Segments-Webhook-Id"] == rules.delivery_id(hook["id"], body["id"])
    assert headers["Segments-Key-Id"] == hook["key_id"] and signed_by(hook["secret"], headers, body)
    assert not signed_by(everything["secret"], headers, body)
    assert "segment.entered" in [b["type"] for _, b in receiver.at("/all")]

    url = mail.unsubscribe_url(tenant.id, None, "ana@example.com")
    assert api.post(url.split("127.0.0.1:8000")[-1].split(":8000")[-1], body="List-Unsubscribe=One-Click",
                    headers={"content-type": "application/x-www-form-urlencoded"}).status == 200  # fmt: skip
    drain(app)
    unsubscribed = [b for _, b in receiver.at("/all") if b["type"] == "contact.unsubscribed"]
    assert [b["data"]["email"] for b in unsubscribed] == ["ana@example.com"]

    (queued,) = [m for m in take_messages(WEBHOOKS_QUEUE)] or [None]  # nothing left behind
    assert queued is None
    before = len(receiver.at("/segments"))
    message = {"kind": "webhook.delivery", "tenant_id": tenant.id, "webhook_id": hook["id"],
               "delivery_id": headers["Segments-Webhook-Id"], "attempt": 1, "event": body}  # fmt: skip
    assert deliver(app, "deliver_webhooks", WEBHOOKS_QUEUE, [message], times=2) == []  # SQS delivering it twice
    again = receiver.at("/segments")[before:]
    assert [h["Segments-Webhook-Id"] for h, _ in again] == [headers["Segments-Webhook-Id"]] * 2  # at least once


def test_a_receiver_failing_three_times_then_answering_gets_each_event_once_per_delivery_id(api, app, receiver):
    tenant = create_tenant(api, "Flaky")
    hook = register(api, tenant, receiver.url("/flaky"), ["trigger.fired"])
    receiver.script["/flaky"] = [500, 503, 502, 200]
    tested = api.post(f"/webhooks/{hook['id']}/test", key=tenant.admin_key).json  # once, no retry
    assert (tested["status"], tested["response_status"], tested["attempts"]) == ("failed", 500, 1)
    receiver.script["/flaky"] = [500, 503, 502, 200]
    assert api.post("/tags", key=tenant.admin_key, json={"name": "gold"}).status == 201
    body = {"name": "Gold", "event": {"type": "tag.added", "tag": "gold"}, "actions": [{"type": "reward", "amount": 5}]}
    assert api.post("/triggers", key=tenant.admin_key, json=body).status == 201
    assert api.post("/contacts", key=tenant.admin_key, json={"external_id": "bo", "tags": ["gold"]}).status == 201
    drain(app)
    attempts = [(h["Segments-Webhook-Id"], b["type"]) for h, b in receiver.at("/flaky")[1:]]
    by_delivery: dict[str, list[str]] = {}
    for delivery, kind in attempts:
        by_delivery.setdefault(delivery, []).append(kind)
    assert list(by_delivery.values()) == [["trigger.fired"] * 4]  # one delivery id, four attempts, one answered
    assert all(signed_by(hook["secret"], h, b) for h, b in receiver.at("/flaky"))
    log = api.get(f"/webhooks/{hook['id']}/deliveries", key=tenant.admin_key).json["items"]
    assert [(line["type"], line["status"], line["attempts"]) for line in log] == [
        ("trigger.fired", "delivered", 4), ("webhook.test", "failed", 1),
    ]  # fmt: skip


def test_a_receiver_that_always_fails_ends_in_the_dead_letter_queue_and_is_switched_off(
    api, app, receiver, monkeypatch
):
    monkeypatch.setattr(rules, "DISABLE_AFTER", 2)
    tenant = create_tenant(api, "Down")
    hook = register(api, tenant, receiver.url("/down"), ["segment.entered"])
    receiver.script["/down"] = [500] * 100
    assert api.post("/tags", key=tenant.admin_key, json={"name": "vip"}).status == 201
    api.post("/segments", key=tenant.admin_key, json={"name": "VIP", "criteria": {"tag": "vip"}})
    drain(app)
    take_messages(WEBHOOKS_DEAD_LETTER_QUEUE)
    for name in ("a", "b", "c"):
        api.post("/contacts", key=tenant.admin_key, json={"external_id": name, "tags": ["vip"]})
        drain(app)
    assert len(receiver.at("/down")) == 2 * rules.MAX_ATTEMPTS  # the third came after it was switched off
    dead = take_messages(WEBHOOKS_DEAD_LETTER_QUEUE)
    assert len(dead) == 2 and {m["webhook_id"] for m in dead} == {hook["id"]}
    endpoint = api.get(f"/webhooks/{hook['id']}", key=tenant.admin_key).json
    assert endpoint["status"] == "disabled" and "HTTP 500" in endpoint["disabled_reason"]
    log = api.get(f"/webhooks/{hook['id']}/deliveries", key=tenant.admin_key).json["items"]
    assert [(line["status"], line["attempts"]) for line in log] == [("failed", rules.MAX_ATTEMPTS)] * 2


def test_a_redirect_is_not_followed(api, receiver):
    tenant = create_tenant(api, "Moved")
    hook = register(api, tenant, receiver.url("/moved"), ["*"])
    receiver.script["/moved"] = [302, 302]
    tested = api.post(f"/webhooks/{hook['id']}/test", key=tenant.admin_key).json
    assert (tested["status"], tested["response_status"]) == ("failed", 302)
    assert "redirects are not followed" in tested["error"]
    assert receiver.at("/elsewhere") == []


def test_private_metadata_and_loopback_addresses_are_never_reached_when_deployed(receiver):
    body, headers = b"{}", {"Content-Type": "application/json"}
    for addresses in (["10.0.0.5"], ["169.254.169.254"], ["93.184.216.34", "127.0.0.1"], ["::1"], ["fd00:ec2::254"]):
        deployed = HttpWebhookTransport(local=lambda: False, resolver=lambda host, port, found=addresses: found)
        attempt = deployed.post("https://hooks.example.com/in", body, headers)
        assert attempt.status is None and attempt.error and attempt.error.startswith("refused"), addresses
    before = len(receiver.requests)
    to_receiver = HttpWebhookTransport(local=lambda: False, resolver=lambda host, port: ["127.0.0.1"])
    assert to_receiver.post(receiver.url("/in"), body, headers).error.startswith("refused")
    assert len(receiver.requests) == before  # nothing was sent
    local = HttpWebhookTransport(local=lambda: True, resolver=lambda host, port: ["127.0.0.1"])
    assert local.post(f"http://hooks.test:{receiver.port}/in", body, headers).status == 200  # the checked address
    assert receiver.requests[-1][0] == "/in"


def test_a_slow_receiver_times_out_fast(receiver):
    receiver.slow.add("/slow")
    transport = HttpWebhookTransport(local=lambda: True, timeout=0.3)
    attempt = transport.post(receiver.url("/slow"), b"{}", {"Content-Type": "application/json"})
    assert attempt.status is None and attempt.error == "no answer within 0.3 s"
    assert attempt.latency_ms < 1_000


def test_a_trigger_posts_to_its_endpoint_and_deleting_the_endpoint_is_reviewed(api, app, receiver):
    tenant = create_tenant(api, "Acting")
    hook = register(api, tenant, receiver.url("/crm"), ["campaign.sent"])  # it hears nothing of this otherwise
    assert api.post("/tags", key=tenant.admin_key, json={"name": "lead"}).status == 201
    body = {"name": "Tell the CRM", "event": {"type": "tag.added", "tag": "lead"},
            "actions": [{"type": "webhook", "webhook_id": hook["id"]}]}  # fmt: skip
    trigger = api.post("/triggers", key=tenant.admin_key, json=body).json
    contact = api.post("/contacts", key=tenant.admin_key, json={"external_id": "cy", "tags": ["lead"]}).json
    drain(app)
    ((_, fired),) = receiver.at("/crm")
    assert (fired["type"], fired["data"]) == (
        "trigger.fired",
        {"trigger_id": trigger["id"], "contact_id": contact["id"]},
    )
    review = api.delete(f"/webhooks/{hook['id']}", key=tenant.admin_key)
    assert review.status == 409 and review.json["error"]["details"]["dependents"][0]["id"] == trigger["id"]
    assert api.delete(f"/webhooks/{hook['id']}?confirm=true", key=tenant.admin_key).status == 204
    after = api.get(f"/triggers/{trigger['id']}", key=tenant.admin_key).json
    assert after["enabled"] is False and hook["id"] in after["status_reason"]
