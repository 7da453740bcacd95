"""Announcements, challenges, rewards and the contact portal: CRUD, bad input, what a contact sees
(and that it never sees a segment), challenge rewards written once, segment deletion, isolation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.config import get_config
from chalicelib.domain import tokens
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.contacts import ordinal_of
from chalicelib.http.api import REGISTRY
from chalicelib.resources import CONTACT_CHANGES_QUEUE
from chalicelib.storage.engagements import EngagementTable
from tests.integration.test_campaign_sending import make_segment
from tests.support.population import import_and_wait
from tests.support.queues import deliver, drain, take_changes

PEOPLE = (
    "external_id,email,tags,first_name\n"
    "p-1,ada@example.com,local;family,Ada\n"
    "p-2,bob@example.com,local,Bob\n"
    "p-3,cy@example.com,family,Cy\n"
)
LOCAL_CRITERIA = {"tag": "local"}
FAMILY_CRITERIA = {"all": [{"tag": "family"}, {"not": {"tag": "nobody-has-this"}}]}


def at(days: float) -> str:
    return to_rfc3339(datetime.now(UTC) + timedelta(days=days))


@pytest.fixture
def club(api, app, tenant):
    for tag in ("local", "family", "nobody-has-this"):
        assert api.post("/tags", key=tenant.admin_key, json={"name": tag}).status == 201
    assert import_and_wait(api, app, tenant.admin_key, PEOPLE)["status"] == "succeeded"
    drain(app)
    tenant.local = make_segment(api, app, tenant, LOCAL_CRITERIA, "Locals in Lisbon")
    tenant.family = make_segment(api, app, tenant, FAMILY_CRITERIA, "Family ticket buyers")
    tenant.contacts = {c["external_id"]: c["id"] for c in api.get("/contacts", key=tenant.admin_key).json["items"]}
    return tenant


def announcement(club, **overrides):
    return {
        "title": "Local performers night",
        "body": "Family programme with local performers, 20% off.",
        "segments": [club.local],
        "starts_at": at(-1),
        "ends_at": at(7),
        **overrides,
    }


def challenge(club, **overrides):
    return {
        "name": "Three shows this month",
        "description": "Buy three tickets before the month ends.",
        "segments": [club.family],
        "starts_at": at(-1),
        "ends_at": at(30),
        "goal": {"event_type": "purchase", "count": 3},
        "reward": {"amount": 50, "currency": "USD", "note": "thank you"},
        **overrides,
    }


def portal_token(api, club, external_id: str) -> str:
    reply = api.post(f"/contacts/{external_id}/portal-tokens", key=club.admin_key)
    assert reply.status == 201, reply.text
    assert reply.json["expires_at"] > at(6.9)
    return reply.json["token"]


def test_announcements_and_challenges_are_created_read_listed_edited_and_deleted(api, club):
    for kind, body in (("announcements", announcement(club)), ("challenges", challenge(club))):
        created = api.post(f"/{kind}", key=club.admin_key, json=body)
        assert created.status == 201, created.text
        item = created.json
        assert item["id"].startswith("ann_" if kind == "announcements" else "chl_")
        assert item["active"] is True and item["status"] == "enabled" and item["segments"] == body["segments"]
        assert api.get(f"/{kind}/{item['id']}", key=club.viewer_key).json == item
        assert [i["id"] for i in api.get(f"/{kind}", key=club.viewer_key).json["items"]] == [item["id"]]
        later = api.patch(f"/{kind}/{item['id']}", key=club.admin_key, json={"starts_at": at(2)})
        assert later.status == 200 and later.json["active"] is False and later.json["version"] == 2
        disabled = api.patch(
            f"/{kind}/{item['id']}", key=club.admin_key, json={"starts_at": at(-1), "status": "disabled"}
        )
        assert disabled.json["active"] is False
        assert api.delete(f"/{kind}/{item['id']}", key=club.admin_key).status == 204
        assert api.get(f"/{kind}/{item['id']}", key=club.viewer_key).status == 404


@pytest.mark.parametrize(
    ("kind", "change", "status", "code", "field"),
    [
        ("announcements", {"segments": "eleven"}, 422, "limit_exceeded", "segments"),
        ("challenges", {"segments": "eleven"}, 422, "limit_exceeded", "segments"),
        ("announcements", {"segments": []}, 422, "validation_error", "segments"),
        ("announcements", {"segments": ["seg_doesnotexist"]}, 422, "validation_error", "segments[0]"),
        ("announcements", {"segments": "twice"}, 422, "validation_error", "segments"),
        ("announcements", {"starts_at": "tomorrow"}, 422, "validation_error", "starts_at"),
        ("announcements", {"ends_at": "2026-01-01T00:00:00"}, 422, "validation_error", "ends_at"),
        ("announcements", {"ends_at": "2000-01-01T00:00:00Z"}, 422, "validation_error", "ends_at"),
        ("announcements", {"title": ""}, 422, "validation_error", "title"),
        ("announcements", {"body": None}, 422, "validation_error", "body"),
        ("announcements", {"colour": "red"}, 422, "validation_error", "colour"),
        ("challenges", {"reward": {"amount": -5}}, 422, "validation_error", "reward.amount"),
        ("challenges", {"reward": {"amount": 0}}, 422, "validation_error", "reward.amount"),
        ("challenges", {"reward": {"amount": 1.005}}, 422, "validation_error", "reward.amount"),
        ("challenges", {"reward": {"amount": 5, "currency": "dollars"}}, 422, "validation_error", "reward.currency"),
        ("challenges", {"goal": {"event_type": "purchase"}}, 422, "validation_error", "goal"),
        ("challenges", {"goal": {"event_type": "purchase", "count": 2, "amount": 9}}, 422, "validation_error", "goal"),
        ("challenges", {"goal": {"event_type": "Purchase!", "count": 2}}, 422, "validation_error", "goal.event_type"),
        ("challenges", {"goal": {"event_type": "purchase", "count": 0}}, 422, "validation_error", "goal.count"),
        ("challenges", {"status": "paused"}, 422, "validation_error", "status"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(api, app, club, kind, change, status, code, field):
    if change.get("segments") == "eleven":
        change = {"segments": [make_segment(api, app, club, {"tag": "local"}, f"S{i}") for i in range(11)]}
    elif change.get("segments") == "twice":
        change = {"segments": [club.local, club.local]}
    body = (announcement if kind == "announcements" else challenge)(club, **change)
    reply = api.post(f"/{kind}", key=club.admin_key, json=body)
    assert reply.status == status and reply.error_code == code, reply.text
    assert reply.json["error"]["details"]["field"] == field
    assert api.get(f"/{kind}", key=club.admin_key).json["items"] == []


def test_a_bad_edit_is_a_422_and_leaves_the_item_as_it_was(api, club):
    item = api.post("/announcements", key=club.admin_key, json=announcement(club)).json
    reply = api.patch(f"/announcements/{item['id']}", key=club.admin_key, json={"ends_at": at(-3)})
    assert reply.status == 422 and reply.json["error"]["details"]["field"] == "ends_at"
    assert api.get(f"/announcements/{item['id']}", key=club.admin_key).json == item


def test_the_portal_shows_a_contact_only_its_active_announcements_and_challenges(api, club):
    current = api.post("/announcements", key=club.admin_key, json=announcement(club)).json
    for hidden in (
        announcement(club, title="Over", starts_at=at(-9), ends_at=at(-2)),
        announcement(club, title="Not yet", starts_at=at(2), ends_at=at(9)),
        announcement(club, title="Off", status="disabled"),
        announcement(club, title="Families only", segments=[club.family]),
    ):
        assert api.post("/announcements", key=club.admin_key, json=hidden).status == 201
    family_challenge = api.post("/challenges", key=club.admin_key, json=challenge(club)).json

    bob = portal_token(api, club, "p-2")  # local, not family
    seen = api.get("/portal/announcements", key=bob)
    assert seen.status == 200
    assert seen.json == {
        "items": [
            {
                "id": current["id"],
                "title": current["title"],
                "body": current["body"],
                "starts_at": current["starts_at"],
                "ends_at": current["ends_at"],
            }
        ]
    }
    assert api.get("/portal/challenges", key=bob).json == {"items": []}

    cy = portal_token(api, club, "p-3")  # family, not local
    assert [a["title"] for a in api.get("/portal/announcements", key=cy).json["items"]] == ["Families only"]
    (shown,) = api.get("/portal/challenges", key=cy).json["items"]
    assert shown["id"] == family_challenge["id"] and shown["reward"] == {
        "amount": 50,
        "currency": "USD",
        "note": "thank you",
    }
    assert shown["progress"] == {"done": 0, "target": 3, "complete": False}


def test_no_portal_response_reveals_a_segment(api, club):
    api.post("/announcements", key=club.admin_key, json=announcement(club, segments=[club.local, club.family]))
    api.post("/challenges", key=club.admin_key, json=challenge(club, segments=[club.family, club.local]))
    secrets_of_segments = [club.local, club.family, "Locals in Lisbon", "Family ticket buyers", "nobody-has-this"]
    secrets_of_segments += ["seg_", "criteria", "segment"]
    portal_routes = [op for op in REGISTRY if op.access.value == "portal"]
    assert {op.path for op in portal_routes} == {"/portal/announcements", "/portal/challenges"}
    for external_id in ("p-1", "p-2", "p-3"):
        token = portal_token(api, club, external_id)
        for op in portal_routes:
            reply = api.request(op.method, op.path, key=token)
            assert reply.status == 200 and reply.json["items"], (external_id, op.path)
            text = reply.text.lower()
            assert not [s for s in secrets_of_segments if s.lower() in text], (external_id, op.path, reply.text)


def test_portal_tokens_open_only_the_portal_and_forged_or_expired_ones_open_nothing(api, club):
    token = portal_token(api, club, "p-1")
    for method, path in (("GET", "/contacts"), ("GET", "/segments"), ("GET", "/announcements"), ("GET", "/tenants")):
        reply = api.request(method, path, key=token)
        assert reply.status == 403 and reply.error_code == "forbidden", (path, reply.text)
    assert api.post("/contacts/p-1/portal-tokens", key=token).status == 403
    assert api.get("/portal/announcements", key=club.admin_key).status == 403
    assert api.get("/portal/announcements").status == 401

    forged = [
        token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
        token[:5] + ("A" if token[5] != "A" else "B") + token[6:],
        tokens.seal({"t": club.id, "c": club.contacts["p-1"], "exp": 4_000_000_000}, purpose="unsubscribe",
                    secret=get_config().secret),
        tokens.seal({"t": club.id, "c": club.contacts["p-1"], "exp": 4_000_000_000}, purpose="portal",
                    secret=b"someone else's secret"),
        tokens.seal({"t": club.id, "c": club.contacts["p-1"], "exp": "never"}, purpose="portal",
                    secret=get_config().secret),
    ]  # fmt: skip
    for bad in forged:
        assert api.get("/portal/announcements", key=bad).status == 401, bad
    expired = tokens.seal(
        {"t": club.id, "c": club.contacts["p-1"], "exp": int(datetime.now(UTC).timestamp()) - 1},
        purpose="portal",
        secret=get_config().secret,
    )
    reply = api.get("/portal/announcements", key=expired)
    assert reply.status == 401 and "expired" in reply.json["error"]["message"]

    for bad_lifetime in ("10", "99999999", "soon"):
        reply = api.post(f"/contacts/p-1/portal-tokens?expires_in={bad_lifetime}", key=club.admin_key)
        assert reply.status == 422 and reply.json["error"]["details"]["field"] == "expires_in"
    short = api.post("/contacts/p-1/portal-tokens?expires_in=300", key=club.admin_key).json
    assert short["expires_at"] < at(0.01)
    assert api.post("/contacts/p-404/portal-tokens", key=club.admin_key).status == 404

    assert api.delete("/contacts/p-1", key=club.admin_key).status == 204
    assert api.get("/portal/announcements", key=token).status == 401  # the contact is gone


def purchases(club, external_id: str, count: int, days_ago: float = 0.5) -> list[dict]:
    return [
        {"external_id": external_id, "type": "purchase", "at": at(-days_ago), "amount": 20, "id": f"{external_id}-{n}"}
        for n in range(count)
    ]


def test_reaching_a_challenge_goal_writes_its_reward_once_whatever_the_redelivery(api, app, club):
    created = api.post("/challenges", key=club.admin_key, json=challenge(club)).json
    big_spender = challenge(club, name="Spend 40", goal={"event_type": "purchase", "amount": 40},
                            reward={"amount": 10})  # fmt: skip
    spend = api.post("/challenges", key=club.admin_key, json=big_spender).json
    outside = challenge(club, name="Locals", segments=[club.local])
    api.post("/challenges", key=club.admin_key, json=outside)

    # Cy (family, not local): two purchases, one of them before the window: no reward yet
    events = purchases(club, "p-3", 1) + purchases(club, "p-3", 1, days_ago=3)
    events[1]["id"] = "p-3-old"
    assert api.post("/events", key=club.admin_key, json={"events": events}).status in (200, 201)
    drain(app)
    ledger = api.get("/contacts/p-3/rewards", key=club.viewer_key).json
    assert ledger["items"] == [] and ledger["totals"] == {}
    (progress,) = [
        c["progress"]
        for c in api.get("/portal/challenges", key=portal_token(api, club, "p-3")).json["items"]
        if c["id"] == created["id"]
    ]
    assert progress == {"done": 1, "target": 3, "complete": False}

    # two more inside the window: both goals reached; every change message delivered three times, shuffled
    assert api.post("/events", key=club.admin_key, json={"events": purchases(club, "p-3", 3)[1:]}).status in (200, 201)
    messages = take_changes(club.id)
    assert messages
    deliver(app, "apply_contact_changes", CONTACT_CHANGES_QUEUE, list(reversed(messages)) + messages + messages)
    drain(app)
    ledger = api.get("/contacts/p-3/rewards", key=club.viewer_key).json
    assert sorted((r["source"]["id"], r["amount"], r["currency"]) for r in ledger["items"]) == sorted(
        [(created["id"], 50, "USD"), (spend["id"], 10, "points")]
    )
    assert ledger["totals"] == {"USD": 50, "points": 10}
    assert all(r["source"]["type"] == "challenge" for r in ledger["items"])

    # more purchases later change nothing: each challenge rewards a contact once
    assert api.post("/events", key=club.admin_key, json={"events": purchases(club, "p-3", 6)[3:]}).status in (200, 201)
    drain(app)
    assert len(api.get("/contacts/p-3/rewards", key=club.viewer_key).json["items"]) == 2
    assert api.get("/contacts/p-2/rewards", key=club.viewer_key).json["items"] == []  # Bob is not in the family segment
    assert api.get("/contacts/p-404/rewards", key=club.viewer_key).status == 404

    # a deleted contact's ledger goes with it
    cy_id = club.contacts["p-3"]
    assert api.delete("/contacts/p-3", key=club.admin_key).status == 204
    assert EngagementTable(club.id).all_rewards(cy_id, ordinal_of(cy_id)) == []


def test_deleting_a_segment_releases_announcements_and_active_challenges_and_says_why(api, app, club):
    only_local = api.post("/announcements", key=club.admin_key, json=announcement(club)).json
    both = api.post(
        "/announcements", key=club.admin_key, json=announcement(club, segments=[club.local, club.family])
    ).json
    active = api.post("/challenges", key=club.admin_key, json=challenge(club, segments=[club.local])).json
    finished = api.post(
        "/challenges", key=club.admin_key, json=challenge(club, segments=[club.local], starts_at=at(-9), ends_at=at(-1))
    ).json
    found = api.get(f"/segments/{club.local}/dependents", key=club.viewer_key).json["items"]
    assert {(d["type"], d["id"]) for d in found} == {
        ("announcement", only_local["id"]),
        ("announcement", both["id"]),
        ("challenge", active["id"]),
    }  # a finished challenge no longer depends on anything
    refused = api.delete(f"/segments/{club.local}", key=club.admin_key)
    assert refused.status == 409 and refused.error_code == "confirmation_required"
    assert api.delete(f"/segments/{club.local}?confirm=true", key=club.admin_key).status == 204

    orphan = api.get(f"/announcements/{only_local['id']}", key=club.viewer_key).json
    assert orphan["segments"] == [] and orphan["status"] == "disabled" and orphan["active"] is False
    assert "Locals in Lisbon" in orphan["status_reason"] and "was deleted" in orphan["status_reason"]
    kept = api.get(f"/announcements/{both['id']}", key=club.viewer_key).json
    assert kept["segments"] == [club.family] and kept["status"] == "enabled" and kept["active"] is True
    assert api.get(f"/challenges/{active['id']}", key=club.viewer_key).json["status"] == "disabled"
    assert api.get(f"/challenges/{finished['id']}", key=club.viewer_key).json["segments"] == [club.local]

    again = api.patch(f"/announcements/{only_local['id']}", key=club.admin_key, json={"segments": [club.family]})
    assert again.status == 200 and again.json["status"] == "enabled" and again.json["status_reason"] is None


def test_viewers_read_admins_write_and_the_feature_flag_guards_every_route(api, club, new_tenant):
    item = api.post("/announcements", key=club.admin_key, json=announcement(club)).json
    routes = [
        op for op in REGISTRY if op.tag in ("announcements", "challenges", "portal") or op.path.endswith("/rewards")
    ]
    off = new_tenant("No segments", segments=False)
    for op in routes:
        path = op.path.replace("{announcement_id}", item["id"]).replace("{challenge_id}", "chl_x")
        path = path.replace("{contact_id}", "p-1")
        reply = api.request(op.method, path, key=off.admin_key, json=announcement(club))
        assert reply.status == 403, (op.method, path, reply.text)
        if op.access.value == "admin":
            viewer = api.request(op.method, path, key=club.viewer_key, json=announcement(club))
            assert viewer.status == 403 and viewer.error_code == "forbidden", (op.method, path)
        assert api.request(op.method, path).status == 401


def test_tenant_b_cannot_read_or_change_tenant_a_engagements_rewards_or_portal(api, app, club, other_tenant):
    ann = api.post("/announcements", key=club.admin_key, json=announcement(club)).json
    chl = api.post("/challenges", key=club.admin_key, json=challenge(club)).json
    other = other_tenant.admin_key
    for method, path in [
        ("GET", f"/announcements/{ann['id']}"),
        ("PATCH", f"/announcements/{ann['id']}"),
        ("DELETE", f"/announcements/{ann['id']}"),
        ("GET", f"/challenges/{chl['id']}"),
        ("PATCH", f"/challenges/{chl['id']}"),
        ("DELETE", f"/challenges/{chl['id']}"),
        ("GET", f"/contacts/{club.contacts['p-1']}/rewards"),
        ("GET", "/contacts/p-1/rewards"),
        ("POST", f"/contacts/{club.contacts['p-1']}/portal-tokens"),
        ("POST", "/contacts/p-1/portal-tokens"),
    ]:
        stolen = {"name": "stolen"} if "challenges" in path else {"title": "stolen"}
        reply = api.request(method, path, key=other, json=stolen)
        assert reply.status == 404, (method, path, reply.text)
    assert api.get("/announcements", key=other).json["items"] == []
    assert api.get("/challenges", key=other).json["items"] == []
    # tenant B's own segment and announcement never reach tenant A's contacts, whatever the ids
    for tag in ("local",):
        api.post("/tags", key=other, json={"name": tag})
    b_segment = make_segment(api, app, other_tenant, {"tag": "local"}, "B locals")
    api.post("/announcements", key=other, json=announcement(club, segments=[b_segment], title="B's news"))
    token = portal_token(api, club, "p-1")
    assert [a["title"] for a in api.get("/portal/announcements", key=token).json["items"]] == ["Local performers night"]
    foreign = tokens.seal({"t": other_tenant.id, "c": club.contacts["p-1"], "exp": 4_000_000_000}, purpose="portal",
                          secret=get_config().secret)  # fmt: skip
    assert api.get("/portal/announcements", key=foreign).status == 401  # that contact id is not one of B's
    assert json.dumps(api.get("/announcements", key=club.admin_key).json).count("B's news") == 0
