"""Every operation, called with every kind of key the contract does not give it, answers as documented:
no key 401, a key of the wrong kind or role 403 — read from the OpenAPI document, so a new route is covered."""

from __future__ import annotations

import pytest

from chalicelib.config import LOCAL_OPERATOR_KEY
from chalicelib.http.openapi import build_spec
from tests.support.world import path_for

SPEC = build_spec()
ALLOWED = {
    "public": {"nobody", "operator", "admin", "viewer", "portal"},
    "operator": {"operator"},
    "admin": {"admin"},
    "viewer": {"admin", "viewer"},
    "portal": {"portal"},
}
OPERATIONS = sorted(
    (method.upper(), path, operation["x-access"])
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
)


def _content_type(method: str, path: str) -> str:
    """The first body type the operation accepts (imports take CSV or JSON Lines, not JSON)."""
    declared = SPEC["paths"][path][method.lower()].get("requestBody", {}).get("content", {})
    return next(iter(declared), "application/json")


@pytest.fixture(scope="module")
def callers(api, world):
    portal = api.post(f"/contacts/{world.ids['contact_id']}/portal-tokens", key=world.admin_key).json["token"]
    return {"nobody": None, "operator": LOCAL_OPERATOR_KEY, "admin": world.admin_key, "viewer": world.viewer_key,
            "portal": portal}  # fmt: skip


@pytest.mark.parametrize("method, path, access", OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_every_operation_refuses_every_caller_the_contract_does_not_name(api, world, callers, method, path, access):
    target = path_for(path, world.ids)
    for who, key in callers.items():
        if who in ALLOWED[access]:
            continue
        reply = api.request(method, target, key=key, body="{}", headers={"content-type": _content_type(method, path)})
        expected = (401, "unauthorized") if key is None else (403, "forbidden")
        assert (reply.status, reply.error_code) == expected, (who, reply.text)
