"""Integration harness: one in-process moto per test worker, started before any client exists.

Tests isolate themselves by creating their own tenant (every key is tenant-first), so the
resources are created once per worker.
"""

from __future__ import annotations

from datetime import timedelta

from moto import mock_aws

from infra.local import moto_patches

moto_patches.apply()
_mock = mock_aws()
_mock.start()

import pytest  # noqa: E402

from infra.local.provision import provision  # noqa: E402

provision()

from app import app as chalice_app  # noqa: E402
from chalicelib.services import jobs as _jobs  # noqa: E402
from chalicelib.services import shards as _shards  # noqa: E402

_jobs.LANE_WAIT_SECONDS = 0  # tests drain the queues at once: a chunk waiting for its turn is visible again at once
_shards.QUIET = timedelta(0)  # likewise: a compaction a bulk write asked for runs at once
from tests.support.client import ApiClient  # noqa: E402
from tests.support.tenants import TenantHandle, create_tenant  # noqa: E402
from tests.support.world import build_world  # noqa: E402


@pytest.fixture(scope="session")
def app():
    return chalice_app


@pytest.fixture(scope="session")
def api(app) -> ApiClient:
    return ApiClient(app)


@pytest.fixture
def new_tenant(api):
    return lambda name="Acme", segments=True: create_tenant(api, name, segments)


@pytest.fixture
def tenant(new_tenant) -> TenantHandle:
    return new_tenant("Tenant A")


@pytest.fixture
def other_tenant(new_tenant) -> TenantHandle:
    return new_tenant("Tenant B")


@pytest.fixture(scope="module")
def world(api, app):
    """A tenant with one of everything (tests/support/world.py), made once per test module."""
    return build_world(api, app)
