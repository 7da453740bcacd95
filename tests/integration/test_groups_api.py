from tests.support.population import many_contacts
from tests.support.queues import drain


def test_group_lifecycle(api, tenant):
    created = api.post("/groups", key=tenant.admin_key, json={"name": "High performers", "description": "Top 10%"})
    assert created.status == 201 and created.json["id"].startswith("grp_") and created.json["member_count"] == 0
    group_id = created.json["id"]
    dup = api.post("/groups", key=tenant.admin_key, json={"name": "high PERFORMERS"})
    assert dup.status == 409 and dup.error_field == "name"
    renamed = api.patch(f"/groups/{group_id}", key=tenant.admin_key, json={"name": "Champions"}).json
    assert renamed["name"] == "Champions"
    assert api.post("/groups", key=tenant.admin_key, json={"name": "High performers"}).status == 201
    names = {g["name"] for g in api.get("/groups", key=tenant.viewer_key).json["items"]}
    assert names == {"Champions", "High performers"}
    assert api.delete(f"/groups/{group_id}", key=tenant.admin_key).status == 204
    assert api.get(f"/groups/{group_id}", key=tenant.admin_key).status == 404


def test_a_contact_is_in_at_most_one_group(api, tenant):
    a = api.post("/groups", key=tenant.admin_key, json={"name": "A"}).json["id"]
    b = api.post("/groups", key=tenant.admin_key, json={"name": "B"}).json["id"]
    contact = api.post("/contacts", key=tenant.admin_key, json={"email": "x@example.com", "group": a}).json
    moved = api.patch(f"/contacts/{contact['id']}", key=tenant.admin_key, json={"group": b}).json
    assert moved["group"] == b
    assert api.get(f"/groups/{a}", key=tenant.admin_key).json["member_count"] == 0
    assert api.get(f"/groups/{b}", key=tenant.admin_key).json["member_count"] == 1
    left = api.patch(f"/contacts/{contact['id']}", key=tenant.admin_key, json={"group": None}).json
    assert left["group"] is None and api.get(f"/groups/{b}", key=tenant.admin_key).json["member_count"] == 0
    wrong = api.post("/contacts", key=tenant.admin_key, json={"email": "y@example.com", "group": ["a", "b"]})
    assert wrong.status == 422 and wrong.error_field == "group"


def test_deleting_a_group_with_members_needs_confirmation_and_releases_them(api, app, tenant):
    group_id = api.post("/groups", key=tenant.admin_key, json={"name": "Resellers"}).json["id"]
    ids = many_contacts(api, app, tenant.admin_key, 5)
    for contact_id in ids[:3]:
        api.patch(f"/contacts/{contact_id}", key=tenant.admin_key, json={"group": group_id})
    refused = api.delete(f"/groups/{group_id}", key=tenant.admin_key)
    assert refused.status == 409 and refused.error_code == "confirmation_required"
    assert refused.json["error"]["details"]["member_count"] == 3
    job = api.delete(f"/groups/{group_id}?confirm=true", key=tenant.admin_key)
    assert job.status == 202
    joining = api.post("/contacts", key=tenant.admin_key, json={"email": "late@example.com", "group": group_id})
    assert joining.status == 422
    drain(app)
    assert api.get(f"/jobs/{job.json['id']}", key=tenant.admin_key).json["counts"]["updated"] == 3
    assert api.get(f"/groups/{group_id}", key=tenant.admin_key).status == 404
    assert all(api.get(f"/contacts/{i}", key=tenant.admin_key).json["group"] is None for i in ids)


def test_bad_group_input(api, tenant):
    for body, field in [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": " "}, "name"),
        ({"name": "x", "kind": 1}, "kind"),
    ]:
        reply = api.post("/groups", key=tenant.admin_key, json=body)
        assert reply.status == 422 and reply.error_field == field, body
    group_id = api.post("/groups", key=tenant.admin_key, json={"name": "Kept"}).json["id"]
    reply = api.delete(f"/groups/{group_id}?confirm=maybe", key=tenant.admin_key)
    assert reply.status == 422 and reply.error_field == "confirm"
    assert api.get(f"/groups/{group_id}", key=tenant.admin_key).status == 200


def test_groups_are_per_tenant_and_viewers_only_read(api, tenant, other_tenant):
    group_id = api.post("/groups", key=tenant.admin_key, json={"name": "A"}).json["id"]
    b = other_tenant.admin_key
    assert api.get(f"/groups/{group_id}", key=b).status == 404
    assert api.patch(f"/groups/{group_id}", key=b, json={"name": "stolen"}).status == 404
    assert api.delete(f"/groups/{group_id}?confirm=true", key=b).status == 404
    assert api.get("/groups", key=b).json["items"] == []
    assert api.post("/contacts", key=b, json={"email": "m@example.com", "group": group_id}).status == 422
    viewer = tenant.viewer_key
    assert api.post("/groups", key=viewer, json={"name": "V"}).status == 403
    assert api.patch(f"/groups/{group_id}", key=viewer, json={"name": "V"}).status == 403
    assert api.delete(f"/groups/{group_id}", key=viewer).status == 403
    assert api.get(f"/groups/{group_id}", key=tenant.admin_key).json["name"] == "A"
