"""Request rates and the audit log (services/trail.py) on in-memory ports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.errors import RateLimited
from chalicelib.services import trail
from chalicelib.services.principal import Principal
from tests.support.fakes import fake_context

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def contexts():
    made = {}

    def context_for(tenant_id: str):
        return made.setdefault(tenant_id, fake_context(tenant_id))

    return context_for


def test_each_key_gets_its_rate_per_second_and_the_operator_is_not_counted(contexts):
    admin = Principal(kind="tenant", tenant_id="ten_1", key_id="key_a", settings={"requests_per_second": 3})
    for _ in range(3):
        trail.admit(contexts, admin, clock=lambda: NOW)
    with pytest.raises(RateLimited) as refused:
        trail.admit(contexts, admin, clock=lambda: NOW)
    assert refused.value.to_body()["error"]["details"]["limit"] == 3
    portal = Principal(kind="portal", tenant_id="ten_1", contact_id="ctc_1", settings={"requests_per_second": 3})
    trail.admit(contexts, portal, clock=lambda: NOW)  # a window of its own
    for _ in range(10):
        trail.admit(contexts, Principal(kind="operator"), clock=lambda: NOW)


def test_writes_are_recorded_with_ids_only_newest_first(contexts):
    admin = Principal(kind="tenant", tenant_id="ten_1", role="admin", key_id="key_a", key_name="ops")
    trail.audit(contexts, admin, "POST /tags", {}, {"name": "vip"}, "req-1", clock=lambda: NOW)
    trail.audit(
        contexts, admin, "DELETE /contacts/{contact_id}", {"contact_id": "ctc_1"}, None, "req-2", clock=lambda: NOW
    )
    later = NOW + timedelta(seconds=1)
    operator = Principal(kind="operator")
    trail.audit(
        contexts, operator, "PATCH /tenants/{tenant_id}", {"tenant_id": "ten_1"}, {}, "req-3", clock=lambda: later
    )
    entries = trail.audit_log(contexts("ten_1"), 10, None)["items"]
    assert [e["request_id"] for e in entries] == ["req-3", "req-2", "req-1"]
    assert entries[1]["target"] == {"contact_id": "ctc_1"} and entries[1]["key"] == {"id": "key_a", "name": "ops"}
    assert entries[0]["key"] == {"id": "operator", "name": "operator"}
    assert "vip" not in str(entries[2])  # bodies are never written down
