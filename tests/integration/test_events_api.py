from datetime import UTC, datetime, timedelta

from chalicelib.domain.clock import to_rfc3339
from tests.support.queues import take_changes


def ago(**delta):
    return to_rfc3339(datetime.now(UTC) - timedelta(**delta))


def new_contact(api, tenant, external_id="p-1"):
    return api.post("/contacts", key=tenant.admin_key, json={"external_id": external_id}).json


def test_events_are_stored_once_per_id_and_listed(api, tenant):
    contact = new_contact(api, tenant)
    take_changes()
    body = {
        "events": [
            {
                "id": "order-1",
                "type": "purchase",
                "at": ago(days=3),
                "amount": 42.5,
                "properties": {"category": "family", "discounted": True},
            },
            {"id": "order-2", "type": "purchase", "at": ago(days=40), "amount": 12},
        ]
    }
    first = api.post(f"/contacts/{contact['id']}/events", key=tenant.admin_key, json=body)
    assert first.status == 201 and first.json["event_ids"] == ["order-1", "order-2"]
    assert api.post("/contacts/p-1/events", key=tenant.admin_key, json=body).status == 201  # a retry
    events = api.get(f"/contacts/{contact['id']}/events", key=tenant.viewer_key).json["items"]
    assert sorted(e["id"] for e in events) == ["order-1", "order-2"]
    family = next(e for e in events if e["id"] == "order-1")
    assert family["amount"] == 42.5 and family["properties"] == {"category": "family", "discounted": True}
    messages = take_changes(tenant.id)
    assert [m["change"] for m in messages] == ["events", "events"] and messages[0]["event_types"] == ["purchase"]


def test_event_pages(api, tenant):
    contact = new_contact(api, tenant)
    api.post(
        f"/contacts/{contact['id']}/events",
        key=tenant.admin_key,
        json={"events": [{"type": "visit", "at": ago(hours=i + 1)} for i in range(5)]},
    )
    first = api.get(f"/contacts/{contact['id']}/events?limit=3", key=tenant.admin_key).json
    second = api.get(
        f"/contacts/{contact['id']}/events?limit=3&cursor={first['next_cursor']}", key=tenant.admin_key
    ).json
    assert len(first["items"]) == 3 and len(second["items"]) == 2 and second["next_cursor"] is None


def test_bad_events_are_refused_and_nothing_is_stored(api, tenant):
    contact = new_contact(api, tenant)
    cases = [
        ({"type": "purchase", "at": ago(days=1), "amount": "12 dollars"}, "events[1].amount"),
        ({"type": "purchase", "at": to_rfc3339(datetime.now(UTC) + timedelta(days=2))}, "events[1].at"),
        ({"type": "purchase", "at": ago(days=500)}, "events[1].at"),
        ({"type": "purchase"}, "events[1].at"),
    ]
    for bad, field in cases:
        reply = api.post(
            f"/contacts/{contact['id']}/events",
            key=tenant.admin_key,
            json={"events": [{"type": "purchase", "at": ago(days=1)}, bad]},
        )
        assert reply.status == 422 and reply.error_field == field, (bad, reply.text)
    assert api.get(f"/contacts/{contact['id']}/events", key=tenant.admin_key).json["items"] == []


def test_bulk_events_by_id_or_external_id(api, tenant):
    a = new_contact(api, tenant, "p-1")
    b = new_contact(api, tenant, "p-2")
    reply = api.post(
        "/events",
        key=tenant.admin_key,
        json={
            "events": [
                {"contact_id": a["id"], "type": "purchase", "at": ago(days=1), "amount": 10},
                {"external_id": "p-2", "type": "purchase", "at": ago(days=2), "amount": 20},
                {"external_id": "p-1", "type": "refund", "at": ago(days=1), "amount": 5},
            ]
        },
    )
    assert reply.status == 201 and reply.json == {"stored": 3, "contacts": 2}
    assert len(api.get(f"/contacts/{a['id']}/events", key=tenant.admin_key).json["items"]) == 2
    assert len(api.get(f"/contacts/{b['id']}/events", key=tenant.admin_key).json["items"]) == 1
    refused = api.post(
        "/events",
        key=tenant.admin_key,
        json={
            "events": [
                {"external_id": "p-2", "type": "purchase", "at": ago(days=1)},
                {"external_id": "p-404", "type": "purchase", "at": ago(days=1)},
            ]
        },
    )
    assert refused.status == 422 and refused.error_field == "events[1].contact_id"
    assert len(api.get(f"/contacts/{b['id']}/events", key=tenant.admin_key).json["items"]) == 1
    missing_ref = api.post("/events", key=tenant.admin_key, json={"events": [{"type": "purchase", "at": ago(days=1)}]})
    assert missing_ref.status == 422 and missing_ref.error_field == "events[0].contact_id"
    too_many = api.post(
        "/events",
        key=tenant.admin_key,
        json={"events": [{"external_id": "p-1", "type": "v", "at": ago(days=1)}] * 1001},
    )
    assert too_many.status == 422 and too_many.error_code == "limit_exceeded"


def test_bulk_events_find_an_external_id_shaped_like_a_contact_id(api, tenant):
    contact = new_contact(api, tenant, "ctc_zzzzzzz")
    reply = api.post(
        "/events",
        key=tenant.admin_key,
        json={
            "events": [
                {"external_id": "ctc_zzzzzzz", "type": "purchase", "at": ago(days=1)},
                {"contact_id": contact["id"], "type": "purchase", "at": ago(days=2)},
            ]
        },
    )
    assert reply.status == 201 and reply.json == {"stored": 2, "contacts": 1}
