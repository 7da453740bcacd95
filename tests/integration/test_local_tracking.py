"""Deliveries, opens and clicks as the local runtime makes them: the local SES tracks the mail of the tracked
configuration set, publishes a Delivery per recipient, and the tracking addresses publish opens and clicks,
all through the same SNS topic and SES-events queue SES uses; the handlers count them. Tracking can be
switched off per tenant and per campaign."""

from __future__ import annotations

import json
import random
import re
import time
from email import message_from_string
from email.policy import default
from urllib.parse import urlsplit

import pytest

from chalicelib.resources import SEND_QUEUE, SES_EVENTS_QUEUE
from chalicelib.services import sending
from chalicelib.services import tenants as tenant_service
from infra.local import mailbox as local_mailbox
from infra.local import ses_simulator
from infra.local.moto_server import TrackingEndpoints
from tests.support.population import import_and_wait
from tests.support.queues import deliver, drain, take_messages
from tests.support.tenants import create_tenant

HTML = (
    "<p>Hi {{ contact.first_name }}</p>"
    '<a href="https://example.com/offer?x=1&amp;y=2">Offer</a> '
    '<a href="https://example.com/kept" ses:no-track>Kept</a> '
    "<a href='{{ unsubscribe_url }}'>unsubscribe</a>"
)
TRACKED = re.compile(r"""(?:href|src)=["'](http://[^"']+/_local/track/[^"']+)["']""")


@pytest.fixture(autouse=True)
def as_make_run(monkeypatch):
    monkeypatch.setattr(ses_simulator, "publish_deliveries", True)  # as the moto server of make run
    monkeypatch.setattr(sending, "REQUEUE_DELAY_CAP", 0)
    monkeypatch.setattr(tenant_service, "SETTINGS_TTL_SECONDS", 0)
    monkeypatch.setattr(tenant_service, "_cached", {})


@pytest.fixture(scope="module")
def shop(api, app):
    tenant = create_tenant(api, "Local tracking")
    assert api.post("/tags", key=tenant.admin_key, json={"name": "news"}).status == 201
    people = "".join(f"{name},{name}@example.com,news,{name.title()}\n" for name in ("ana", "bo", "cy"))
    import_and_wait(api, app, tenant.admin_key, "external_id,email,tags,first_name\n" + people)
    assert api.patch("/settings", key=tenant.admin_key, json={"send_rate_per_second": 1000}).status == 200
    reply = api.post("/segments", key=tenant.admin_key, json={"name": "News", "criteria": {"tag": "news"}})
    drain(app)
    tenant.news = reply.json["id"]
    take_messages(SES_EVENTS_QUEUE)
    return tenant


def send(api, app, tenant, **fields) -> tuple[str, dict[str, str]]:
    """Send a campaign to the three; its id and the HTML each recipient got, as the Mailbox has it."""
    body = {"name": "Offer", "from": "news@example.com", "subject": "Hi", "html": HTML, "segments": [tenant.news]}
    created = api.post("/campaigns", key=tenant.admin_key, json={**body, **fields})
    assert created.status == 201, created.text
    assert api.post(f"/campaigns/{created.json['id']}/send", key=tenant.admin_key).status == 200
    drain(app, SEND_QUEUE)
    sent = [m for m in local_mailbox.newest(tenant.id, 50, None) if m["tags"].get("campaign_id") == created.json["id"]]
    html = {m["to"]: html_of(local_mailbox.one(tenant.id, m["id"])["raw"]) for m in sent}
    assert sorted(html) == ["ana@example.com", "bo@example.com", "cy@example.com"]
    return created.json["id"], html


def html_of(raw: str) -> str:
    (part,) = [p for p in message_from_string(raw, policy=default).walk() if p.get_content_type() == "text/html"]
    return part.get_content()


def follow(url: str, path: str | None = None) -> tuple[str, dict[str, str]]:
    """GET a tracking address from the local SES, as a mail client (or the console) does."""
    answered: dict = {}

    def start_response(status, headers):
        answered.update(status=status, headers=dict(headers))

    never_reached = TrackingEndpoints(lambda environ, start: pytest.fail("not a tracking address"))
    environ = {"PATH_INFO": path or urlsplit(url).path, "HTTP_USER_AGENT": "pytest", "REMOTE_ADDR": "127.0.0.1"}
    b"".join(never_reached(environ, start_response))
    return answered["status"], answered["headers"]


def stats_of(api, tenant, campaign_id) -> dict[str, int]:
    stats = api.get(f"/campaigns/{campaign_id}", key=tenant.viewer_key).json["stats"]
    return {name: stats[name] for name in ("sent", "delivered", "opened", "clicked", "opens", "clicks")}


def test_tracked_mail_counts_deliveries_opens_and_clicks_once_through_the_ses_topic(api, app, shop):
    campaign_id, raw = send(api, app, shop)
    ana = TRACKED.findall(raw["ana@example.com"])
    offer, unsubscribe, pixel = ana  # the no-track link stays as written
    assert 'href="https://example.com/kept" ses:no-track' in raw["ana@example.com"]
    assert "/open/" in pixel and "/click/" in offer and "/click/" in unsubscribe

    assert follow(offer) == (
        "302 Found",
        {"Location": "https://example.com/offer?x=1&y=2", "Cache-Control": "no-store", "Content-Length": "0"},
    )
    for _ in range(2):
        assert follow(pixel)[1]["Content-Type"] == "image/gif"
        time.sleep(0.002)  # two opens, two moments: SES tells them apart by their timestamp
    (bo_pixel,) = [url for url in TRACKED.findall(raw["bo@example.com"]) if "/open/" in url]
    follow(bo_pixel)
    assert follow("", path="/_local/track/click/not-a-token")[0] == "404 Not Found"
    assert follow("", path=urlsplit(pixel).path.replace("/open/", "/click/"))[0] == "404 Not Found"

    notifications = take_messages(SES_EVENTS_QUEUE)
    kinds = sorted(json.loads(n["Message"])["eventType"] for n in notifications)
    assert kinds == ["Click", "Delivery", "Delivery", "Delivery", "Open", "Open", "Open"]
    random.Random(7).shuffle(notifications)
    assert deliver(app, "apply_ses_notifications", SES_EVENTS_QUEUE, notifications, times=2) == []
    assert stats_of(api, shop, campaign_id) == {
        "sent": 3,
        "delivered": 3,
        "opened": 2,
        "clicked": 1,
        "opens": 3,
        "clicks": 1,
    }
    events = api.get("/contacts/ana/events", key=shop.viewer_key).json["items"]
    clicked = [e["properties"] for e in events if e["type"] == "email.clicked"]
    assert clicked == [{"campaign_id": campaign_id, "link": "https://example.com/offer?x=1&y=2"}]


def test_a_campaign_or_a_tenant_may_switch_tracking_off_and_deliveries_still_count(api, app, shop):
    untracked_id, raw = send(api, app, shop, tracking=False)
    assert api.get(f"/campaigns/{untracked_id}", key=shop.viewer_key).json["tracking"] is False
    assert not any(TRACKED.findall(mail) for mail in raw.values())
    assert 'href="https://example.com/offer?x=1&amp;y=2"' in raw["ana@example.com"]

    assert api.patch("/settings", key=shop.admin_key, json={"tracking": False}).status == 200
    follows_tenant_id, raw = send(api, app, shop)
    assert not any(TRACKED.findall(mail) for mail in raw.values())
    overridden_id, raw = send(api, app, shop, tracking=True)  # the campaign's word wins over the tenant's
    assert all(TRACKED.findall(mail) for mail in raw.values())
    assert api.patch("/settings", key=shop.admin_key, json={"tracking": None}).status == 200

    notifications = take_messages(SES_EVENTS_QUEUE)
    assert deliver(app, "apply_ses_notifications", SES_EVENTS_QUEUE, notifications, times=2) == []
    for campaign_id in (untracked_id, follows_tenant_id, overridden_id):
        assert stats_of(api, shop, campaign_id) == {
            "sent": 3,
            "delivered": 3,
            "opened": 0,
            "clicked": 0,
            "opens": 0,
            "clicks": 0,
        }


def test_tracking_is_a_boolean_or_null_everywhere_it_is_set(api, shop):
    for value in ("yes", 1, [], {}):
        reply = api.patch("/settings", key=shop.admin_key, json={"tracking": value})
        assert reply.status == 422 and "tracking" in reply.text, reply.text
        body = {"name": "x", "subject": "x", "text": "x", "segments": [shop.news], "tracking": value}
        reply = api.post("/campaigns", key=shop.admin_key, json=body)
        assert reply.status == 422 and "tracking" in reply.text, reply.text
