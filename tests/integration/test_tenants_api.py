from tests.support.tenants import OPERATOR


def test_operator_creates_tenant_with_segments_off_and_a_working_admin_key(api):
    reply = api.post("/tenants", key=OPERATOR, json={"name": "  Acme  "})
    assert reply.status == 201
    body = reply.json
    assert body["id"].startswith("ten_")
    assert body["name"] == "Acme"
    assert body["features"] == {"segments": False}
    assert body["admin_key"].startswith("sgk_")
    assert api.get("/settings", key=body["admin_key"]).status == 200


def test_admin_key_is_shown_once_and_never_listed(api, tenant):
    assert api.get(f"/tenants/{tenant.id}", key=OPERATOR).json.get("admin_key") is None
    listed = api.get("/api-keys", key=tenant.admin_key).json["items"]
    assert all("key" not in item for item in listed)
    assert all(tenant.admin_key not in str(item) for item in listed)


def test_operator_switches_features(api, new_tenant):
    handle = new_tenant(segments=False)
    on = api.patch(f"/tenants/{handle.id}", key=OPERATOR, json={"features": {"segments": True}})
    assert on.status == 200 and on.json["features"]["segments"] is True
    assert api.get(f"/tenants/{handle.id}", key=OPERATOR).json["features"]["segments"] is True
    off = api.patch(f"/tenants/{handle.id}", key=OPERATOR, json={"features": {"segments": False}})
    assert off.json["features"]["segments"] is False


def test_operator_lists_tenants_with_pagination(api, new_tenant):
    created = {new_tenant(f"page-{i}").id for i in range(3)}
    seen, cursor = set(), None
    for _ in range(1000):
        path = "/tenants?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(path, key=OPERATOR).json
        assert len(page["items"]) <= 2
        seen |= {item["id"] for item in page["items"]}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert created <= seen


def test_tenant_routes_need_the_operator_key(api, tenant):
    assert api.post("/tenants", json={"name": "x"}).status == 401
    assert api.post("/tenants", key="sgk_nonsense", json={"name": "x"}).error_code == "unauthorized"
    for key in (tenant.admin_key, tenant.viewer_key):
        assert api.post("/tenants", key=key, json={"name": "x"}).status == 403
        assert api.get(f"/tenants/{tenant.id}", key=key).status == 403
        reply = api.patch(f"/tenants/{tenant.id}", key=key, json={"features": {"segments": False}})
        assert reply.status == 403 and reply.error_code == "forbidden"
    assert api.get(f"/tenants/{tenant.id}", key=OPERATOR).json["features"]["segments"] is True


def test_bad_tenant_input_is_refused_with_the_field(api):
    cases = [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x", "plan": "gold"}, "plan"),
        ({"name": "x" * 201}, "name"),
    ]
    for body, field in cases:
        reply = api.post("/tenants", key=OPERATOR, json=body)
        assert reply.status == 422, body
        assert reply.error_field == field, (body, reply.text)


def test_bad_feature_patch_changes_nothing(api, tenant):
    for body, field in [
        ({"features": {"segments": "yes"}}, "features.segments"),
        ({"features": {"teleport": True}}, "features.teleport"),
        ({}, "body"),
    ]:
        reply = api.patch(f"/tenants/{tenant.id}", key=OPERATOR, json=body)
        assert reply.status == 422 and reply.error_field == field, reply.text
    assert api.get(f"/tenants/{tenant.id}", key=OPERATOR).json["features"] == {"segments": True}


def test_unknown_tenant_is_404(api):
    assert api.get("/tenants/ten_missing", key=OPERATOR).status == 404
    assert api.patch("/tenants/ten_missing", key=OPERATOR, json={"name": "x"}).error_code == "not_found"
