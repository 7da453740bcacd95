"""Test harness: one in-process moto per test worker, started before any client exists.

Tests isolate themselves by creating their own tenant (every key is
tenant-first), so the resources are created once per worker.
"""

from __future__ import annotations

import os

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "SEGMENTS_STAGE": "local",
    "POWERTOOLS_METRICS_DISABLED": "true",  # tests/integration/test_metrics.py turns them on to read them
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)

from moto import mock_aws  # noqa: E402

from infra.local import moto_patches  # noqa: E402

moto_patches.apply()
_mock = mock_aws()
_mock.start()

import pytest  # noqa: E402

from infra.local.provision import provision  # noqa: E402

QUEUE_URLS = provision()

from app import app as chalice_app  # noqa: E402
from chalicelib.services import jobs as _jobs  # noqa: E402

_jobs.LANE_WAIT_SECONDS = 0  # tests drain the queues at once: a chunk waiting for its turn is visible again at once
from chalicelib.config import LOCAL_OPERATOR_KEY  # noqa: E402
from tests.support.client import ApiClient  # noqa: E402

OPERATOR = LOCAL_OPERATOR_KEY


@pytest.fixture(scope="session")
def app():
    return chalice_app


@pytest.fixture(scope="session")
def api(app) -> ApiClient:
    return ApiClient(app)


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


@pytest.fixture
def new_tenant(api):
    return lambda name="Acme", segments=True: create_tenant(api, name, segments)


@pytest.fixture
def tenant(new_tenant) -> TenantHandle:
    return new_tenant("Tenant A")


@pytest.fixture
def other_tenant(new_tenant) -> TenantHandle:
    return new_tenant("Tenant B")
