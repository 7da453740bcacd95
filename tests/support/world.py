"""A tenant with one of everything, so every path parameter of the API names something that exists
(tests that walk every operation of the OpenAPI document)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.config import LOCAL_OPERATOR_KEY
from chalicelib.domain.clock import to_rfc3339
from tests.integration.test_campaign_sending import make_segment
from tests.support.population import import_and_wait
from tests.support.queues import drain
from tests.support.tenants import create_tenant


def soon(days: float) -> str:
    return to_rfc3339(datetime.now(UTC) + timedelta(days=days))


def build_world(api, app):
    """One tenant with one of everything, so every path parameter names something that exists."""
    tenant = create_tenant(api, "One of everything")
    key = tenant.admin_key
    assert api.post("/tags", key=key, json={"name": "vip"}).status == 201
    job = import_and_wait(api, app, key, "external_id,email,tags,attributes.signup_at\np-1,a@example.com,vip,\n")
    drain(app)
    contact = api.get("/contacts/p-1", key=key).json
    segment = make_segment(api, app, tenant, {"tag": "vip"}, "VIPs")
    window = {"starts_at": soon(-1), "ends_at": soon(7)}
    ids = {
        "contact_id": contact["id"],
        "segment_id": segment,
        "job_id": job["id"],
        "name": "vip",
        "tenant_id": tenant.id,
        "group_id": api.post("/groups", key=key, json={"name": "Gold"}).json["id"],
        "announcement_id": api.post(
            "/announcements", key=key, json={"title": "t", "body": "b", "segments": [segment], **window}
        ).json["id"],
        "challenge_id": api.post(
            "/challenges",
            key=key,
            json={
                "name": "c",
                "segments": [segment],
                **window,
                "goal": {"event_type": "purchase", "count": 2},
                "reward": {"amount": 5},
            },
        ).json["id"],
        "campaign_id": api.post(
            "/campaigns",
            key=key,
            json={"name": "n", "from": "news@example.com", "subject": "s", "text": "t", "segments": [segment]},
        ).json["id"],
        "trigger_id": api.post(
            "/triggers",
            key=key,
            json={
                "name": "w",
                "event": {"type": "schedule", "expression": "rate(1 day)", "segments": [segment]},
                "actions": [{"type": "reward", "amount": 1}],
            },
        ).json["id"],
        "journey_id": api.post(
            "/journeys",
            key=key,
            json={
                "name": "j",
                "entry": {"type": "segment.entered", "segments": [segment]},
                "start": "wait",
                "steps": {"wait": {"type": "wait", "duration": "P1D", "next": None}},
            },
        ).json["id"],
        "key_id": api.post("/api-keys", key=key, json={"role": "viewer", "name": "v"}).json["id"],
        "webhook_id": api.post(
            "/webhooks", key=key, json={"url": "http://127.0.0.1:9/hooks", "events": ["campaign.sent"]}
        ).json["id"],
        "email": "someone@example.com",
        "token": "x",
    }
    tenant.ids = ids
    return tenant


def path_for(template: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        template = template.replace("{" + name + "}", value)
    return template


def key_for(world, access: str) -> str | None:
    """The key an operation's ``x-access`` asks for (viewer operations are called with the viewer key)."""
    return {"operator": LOCAL_OPERATOR_KEY, "admin": world.admin_key, "viewer": world.viewer_key}.get(access)
