"""Tenants made through the HTTP API, as a test needs them."""

from __future__ import annotations

from chalicelib.config import LOCAL_OPERATOR_KEY
from tests.support.client import ApiClient

OPERATOR = LOCAL_OPERATOR_KEY


class TenantHandle:
    def __init__(self, api: ApiClient, body: dict) -> None:
        self.api = api
        self.id = body["id"]
        self.admin_key = body["admin_key"]
        self._viewer_key: str | None = None

    @property
    def viewer_key(self) -> str:
        if self._viewer_key is None:
            reply = self.api.post("/api-keys", key=self.admin_key, json={"role": "viewer", "name": "viewer"})
            assert reply.status == 201, reply.text
            self._viewer_key = reply.json["key"]
        return self._viewer_key

    def enable(self, feature: str = "segments") -> TenantHandle:
        reply = self.api.patch(f"/tenants/{self.id}", key=OPERATOR, json={"features": {feature: True}})
        assert reply.status == 200, reply.text
        return self


def create_tenant(api: ApiClient, name: str = "Acme", segments: bool = True) -> TenantHandle:
    """A new tenant whose keys may make 1,000 requests a second: an in-process client makes more than the
    default 50 (tests/integration/test_limits_and_trail.py holds a tenant to a low rate)."""
    reply = api.post("/tenants", key=OPERATOR, json={"name": name})
    assert reply.status == 201, reply.text
    handle = TenantHandle(api, reply.json)
    fast = api.patch("/settings", key=handle.admin_key, json={"requests_per_second": 1000})
    assert fast.status == 200, fast.text
    return handle.enable() if segments else handle
