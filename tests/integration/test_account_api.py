from tests.support.tenants import OPERATOR


def test_admin_creates_viewer_key_that_reads_but_cannot_write(api, tenant):
    reply = api.post("/api-keys", key=tenant.admin_key, json={"role": "viewer", "name": "dashboards"})
    assert reply.status == 201
    viewer = reply.json["key"]
    assert reply.json["role"] == "viewer" and reply.json["hint"].endswith("…")
    assert api.get("/settings", key=viewer).status == 200
    refused = api.patch("/settings", key=viewer, json={"send_rate_per_second": 5})
    assert refused.status == 403 and refused.error_code == "forbidden"
    assert api.post("/api-keys", key=viewer, json={"role": "admin"}).status == 403
    assert api.get("/api-keys", key=viewer).status == 403
    assert api.get("/settings", key=tenant.admin_key).json["send_rate_per_second"] == 10


def test_revoked_key_stops_working(api, tenant):
    created = api.post("/api-keys", key=tenant.admin_key, json={"role": "admin"}).json
    assert api.get("/settings", key=created["key"]).status == 200
    assert api.delete(f"/api-keys/{created['id']}", key=tenant.admin_key).status == 204
    assert api.get("/settings", key=created["key"]).status == 401
    assert api.delete(f"/api-keys/{created['id']}", key=tenant.admin_key).status == 404


def test_last_admin_key_cannot_be_revoked(api, tenant):
    keys = api.get("/api-keys", key=tenant.admin_key).json["items"]
    (admin,) = [k for k in keys if k["role"] == "admin"]
    reply = api.delete(f"/api-keys/{admin['id']}", key=tenant.admin_key)
    assert reply.status == 409 and reply.error_code == "conflict"
    assert api.get("/settings", key=tenant.admin_key).status == 200


def test_keys_are_listed_with_pagination(api, tenant):
    for i in range(4):
        api.post("/api-keys", key=tenant.admin_key, json={"role": "viewer", "name": f"v{i}"})
    first = api.get("/api-keys?limit=3", key=tenant.admin_key).json
    assert len(first["items"]) == 3 and first["next_cursor"]
    second = api.get(f"/api-keys?limit=3&cursor={first['next_cursor']}", key=tenant.admin_key).json
    ids = [k["id"] for k in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 5


def test_tenant_a_cannot_see_or_revoke_tenant_b_keys(api, tenant, other_tenant):
    b_key = api.post("/api-keys", key=other_tenant.admin_key, json={"role": "viewer"}).json
    a_listing = api.get("/api-keys", key=tenant.admin_key).json["items"]
    assert b_key["id"] not in {k["id"] for k in a_listing}
    assert api.delete(f"/api-keys/{b_key['id']}", key=tenant.admin_key).status == 404
    assert api.get("/settings", key=b_key["key"]).status == 200


def test_cursor_from_another_tenant_or_altered_is_refused(api, tenant, other_tenant):
    for i in range(3):
        api.post("/api-keys", key=other_tenant.admin_key, json={"role": "viewer", "name": f"b{i}"})
    b_cursor = api.get("/api-keys?limit=1", key=other_tenant.admin_key).json["next_cursor"]
    reply = api.get(f"/api-keys?cursor={b_cursor}", key=tenant.admin_key)
    assert reply.status == 422 and reply.error_field == "cursor"
    altered = b_cursor[:-2] + ("AA" if not b_cursor.endswith("AA") else "BB")
    assert api.get(f"/api-keys?cursor={altered}", key=other_tenant.admin_key).error_field == "cursor"


def test_bad_key_input(api, tenant):
    for body, field in [({}, "role"), ({"role": "owner"}, "role"), ({"role": "viewer", "name": ""}, "name")]:
        reply = api.post("/api-keys", key=tenant.admin_key, json=body)
        assert reply.status == 422 and reply.error_field == field, reply.text
    for query in ("limit=0", "limit=501", "limit=ten"):
        assert api.get(f"/api-keys?{query}", key=tenant.admin_key).error_field == "limit"


def test_operator_key_is_not_a_tenant_key(api):
    assert api.get("/settings", key=OPERATOR).status == 403


def test_settings_defaults_patch_and_reset(api, tenant):
    defaults = api.get("/settings", key=tenant.admin_key).json
    assert defaults["limits"]["tags_per_segment"] == 10
    assert defaults["limits"]["segments_per_campaign"] == 10
    assert defaults["sender"]["email"] is None
    changed = api.patch(
        "/settings",
        key=tenant.admin_key,
        json={"sender": {"email": "news@example.com", "name": "Acme"}, "limits": {"tags_per_segment": 5}},
    ).json
    assert changed["sender"] == {"email": "news@example.com", "name": "Acme", "reply_to": None}
    assert changed["limits"]["tags_per_segment"] == 5
    assert changed["limits"]["segments_per_trigger"] == 10
    reset = api.patch("/settings", key=tenant.admin_key, json={"limits": {"tags_per_segment": None}}).json
    assert reset["limits"]["tags_per_segment"] == 10
    assert reset["sender"]["email"] == "news@example.com"
    assert api.get("/settings", key=tenant.viewer_key).json == reset


def test_bad_settings_change_nothing(api, tenant):
    before = api.get("/settings", key=tenant.admin_key).json
    for body, field in [
        ({"sender": {"email": "not-an-address"}}, "sender.email"),
        ({"limits": {"tags_per_segment": 0}}, "limits.tags_per_segment"),
        ({"limits": {"tags_per_segment": 51}}, "limits.tags_per_segment"),
        ({"limits": {"tags_per_galaxy": 3}}, "limits.tags_per_galaxy"),
        ({"send_rate_per_second": "fast"}, "send_rate_per_second"),
        ({"frequency_cap": {"max_emails": -1}}, "frequency_cap.max_emails"),
        ([], "body"),
    ]:
        reply = api.patch("/settings", key=tenant.admin_key, json=body)
        assert reply.status == 422, body
        assert reply.error_field == field, (body, reply.text)
    assert api.get("/settings", key=tenant.admin_key).json == before


def test_settings_are_per_tenant(api, tenant, other_tenant):
    api.patch("/settings", key=tenant.admin_key, json={"send_rate_per_second": 3})
    assert api.get("/settings", key=other_tenant.admin_key).json["send_rate_per_second"] == 10
