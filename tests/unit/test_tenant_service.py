"""Tenants, keys, settings and authentication (services/tenants.py, services/auth.py) on the in-memory
directory: a key is shown once and leads back to its tenant and role; the last admin key stays."""

from __future__ import annotations

import pytest

from chalicelib.config import get_config
from chalicelib.domain.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from chalicelib.services import auth, tenants
from chalicelib.services.context import TenantContext
from tests.support.fakes import InMemoryDirectory, fake_directory, fake_ports


@pytest.fixture
def directory() -> InMemoryDirectory:
    return InMemoryDirectory()


def context_of(directory: InMemoryDirectory, principal) -> TenantContext:
    return TenantContext(fake_ports(principal.tenant_id, directory=directory), principal.settings, principal)


def test_a_new_tenant_key_authenticates_as_its_admin_with_effective_settings(directory):
    made = tenants.create_tenant(directory, {"name": "  Acme  "})
    assert made["name"] == "Acme" and made["admin_key"].startswith("sgk_")
    principal = auth.authenticate(directory, f"Bearer {made['admin_key']}")
    assert (principal.kind, principal.tenant_id, principal.role, principal.is_admin) == (
        "tenant",
        made["id"],
        "admin",
        True,
    )
    assert principal.settings["requests_per_second"] == 50 and principal.features == made["features"]
    for refused in (None, "Basic abc", "Bearer ", "Bearer sgk_not-a-key", "Bearer nonsense"):
        with pytest.raises(Unauthorized):
            auth.authenticate(directory, refused)
    assert auth.authenticate(directory, f"Bearer {get_config().operator_key}").kind == "operator"


def test_viewer_keys_and_the_last_admin_key(directory):
    made = tenants.create_tenant(directory, {"name": "Acme"})
    ctx = context_of(directory, auth.authenticate(directory, f"Bearer {made['admin_key']}"))
    viewer = tenants.create_api_key(ctx, {"role": "viewer", "name": "dashboards"})
    as_viewer = auth.authenticate(directory, f"Bearer {viewer['key']}")
    assert as_viewer.role == "viewer" and not as_viewer.is_admin and as_viewer.key_name == "dashboards"
    listed = tenants.list_api_keys(ctx, 10, None)["items"]
    assert sorted(k["role"] for k in listed) == ["admin", "viewer"] and all("key" not in k for k in listed)
    (admin,) = [k for k in listed if k["role"] == "admin"]
    with pytest.raises(Conflict):
        tenants.delete_api_key(ctx, admin["id"])
    tenants.delete_api_key(ctx, viewer["id"])
    with pytest.raises(Unauthorized):
        auth.authenticate(directory, f"Bearer {viewer['key']}")
    with pytest.raises(NotFound):
        tenants.delete_api_key(ctx, viewer["id"])


def test_settings_are_patched_over_the_defaults_and_bad_ones_refused(directory):
    made = tenants.create_tenant(directory, {"name": "Acme"})
    ctx = context_of(directory, auth.authenticate(directory, f"Bearer {made['admin_key']}"))
    assert tenants.update_settings(ctx, {"send_rate_per_second": 3})["send_rate_per_second"] == 3
    assert tenants.get_settings(ctx)["send_rate_per_second"] == 3
    with pytest.raises(ValidationFailed):
        tenants.update_settings(ctx, {"send_rate_per_second": -1})
    assert auth.authenticate(directory, f"Bearer {made['admin_key']}").settings["send_rate_per_second"] == 3


def test_the_operator_turns_features_on_per_tenant():
    directory = fake_directory()
    made = tenants.create_tenant(directory, {"name": "Acme"})
    assert not made["features"]["segments"]
    updated = tenants.update_tenant(directory, made["id"], {"features": {"segments": True}})
    assert updated["features"]["segments"] and tenants.get_tenant(directory, made["id"])["features"]["segments"]
    assert [t["id"] for t in tenants.list_tenants(directory, 10, None)["items"]] == [made["id"]]
    with pytest.raises(NotFound):
        tenants.get_tenant(directory, "ten_missing")


def test_whoami_names_the_tenant_the_keys_role_features_and_limits(directory):
    made = tenants.create_tenant(directory, {"name": "Acme"})
    ctx = context_of(directory, auth.authenticate(directory, f"Bearer {made['admin_key']}"))
    me = tenants.whoami(ctx, "local")
    assert me["tenant"] == {"id": made["id"], "name": "Acme"} and me["key"]["role"] == "admin"
    assert me["features"]["segments"] is False and me["limits"]["tags_per_segment"] == 10 and me["stage"] == "local"
    viewer = tenants.create_api_key(ctx, {"role": "viewer", "name": "dashboards"})
    as_viewer = context_of(directory, auth.authenticate(directory, f"Bearer {viewer['key']}"))
    assert tenants.whoami(as_viewer, "dev")["key"] == {"id": viewer["id"], "name": "dashboards", "role": "viewer"}
