"""The cross-cutting HTTP conventions of API.md."""

import json

import pytest
from chalice import Chalice

from chalicelib.http.api import Access, ApiBlueprint, Call
from chalicelib.http.envelope import envelope_middleware
from tests.support.client import ApiClient
from tests.support.logs import captured_log_records
from tests.support.tenants import OPERATOR


def assert_envelope(reply, status, code):
    assert reply.status == status, reply.text
    body = reply.json
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)


def test_health_needs_no_key(api):
    reply = api.get("/health")
    assert reply.status == 200 and reply.json == {"status": "ok"}


def test_unknown_route_is_a_404_envelope(api, tenant):
    assert_envelope(api.get("/no/such/route"), 404, "not_found")
    assert_envelope(api.get("/no/such/route", key=tenant.admin_key), 404, "not_found")


def test_wrong_method_is_a_405_envelope(api, tenant):
    reply = api.request("PUT", "/settings", key=tenant.admin_key, json={})
    assert_envelope(reply, 405, "method_not_allowed")
    assert "PATCH" in reply.headers.get("allow", "")


def test_malformed_json_is_a_400_envelope_and_changes_nothing(api, tenant):
    before = api.get("/settings", key=tenant.admin_key).json
    for raw in ('{"send_rate_per_second": 5', "not json", '{"a": NaN}', "[" * 100_000, ""):
        reply = api.patch("/settings", key=tenant.admin_key, body=raw)
        assert_envelope(reply, 400, "invalid_json")
        assert reply.error_field == "body"
    assert api.get("/settings", key=tenant.admin_key).json == before


def test_unsupported_content_type_is_a_415_envelope(api):
    reply = api.post("/tenants", key=OPERATOR, body="name=x", headers={"content-type": "text/plain"})
    assert_envelope(reply, 415, "unsupported_media_type")


def test_body_over_the_limit_is_a_413_envelope(api):
    huge = json.dumps({"name": "x" * (6 * 1024 * 1024)})
    reply = api.post("/tenants", key=OPERATOR, body=huge)
    assert_envelope(reply, 413, "payload_too_large")


def test_every_response_has_a_request_id(api, tenant):
    for reply in (api.get("/health"), api.get("/settings", key=tenant.admin_key), api.get("/settings")):
        assert reply.headers.get("x-request-id")


def test_bad_authorization_headers(api, tenant):
    for header in ("", "Basic abc", "Bearer", "Bearer ", f"Token {tenant.admin_key}"):
        reply = api.get("/settings", headers={"authorization": header})
        assert_envelope(reply, 401, "unauthorized")


def test_lowercase_bearer_scheme_is_accepted(api, tenant):
    assert api.get("/settings", headers={"authorization": f"bearer {tenant.admin_key}"}).status == 200


@pytest.fixture(scope="module")
def feature_app():
    """A tiny app using the real operation decorator: proves the feature check once for every route."""
    blueprint = ApiBlueprint(__name__)

    @blueprint.operation("GET", "/gated", summary="gated", access=Access.VIEWER, feature="segments")
    def gated(call: Call) -> dict:
        return {"tenant": call.tenant_id}

    @blueprint.operation("GET", "/boom", summary="boom", access=Access.PUBLIC)
    def boom(call: Call) -> dict:
        raise RuntimeError("user@example.com broke it")

    app = Chalice(app_name="feature-test")
    app.register_middleware(envelope_middleware, "http")
    app.register_blueprint(blueprint)
    from chalicelib.http.api import REGISTRY

    REGISTRY[:] = [op for op in REGISTRY if op.path not in ("/gated", "/boom")]
    return ApiClient(app)


def test_feature_flag_gates_routes_until_enabled(api, feature_app, new_tenant):
    handle = new_tenant(segments=False)
    assert_envelope(feature_app.get("/gated", key=handle.admin_key), 403, "feature_disabled")
    handle.enable()
    reply = feature_app.get("/gated", key=handle.admin_key)
    assert reply.status == 200 and reply.json == {"tenant": handle.id}


def test_unexpected_error_is_a_500_envelope_and_a_scrubbed_json_log(feature_app):
    with captured_log_records() as records:
        reply = feature_app.get("/boom")
    assert_envelope(reply, 500, "internal_error")
    assert "example.com" not in reply.text
    (error,) = [r for r in records if r["level"] == "ERROR"]
    assert error["route"] == "GET /boom" and error["request_id"]
    assert error["exception_name"] == "RuntimeError"
    assert "user@example.com" not in json.dumps(records) and "[email]" in error["exception"]
