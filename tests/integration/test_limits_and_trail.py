"""A key may make requests_per_second requests a second (429 rate_limited with Retry-After past it, other
keys and tenants unaffected); every admin and operator write is in the tenant's audit log, readable by
admins only, without personal data."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from chalicelib.composition import tenant_context
from chalicelib.domain.errors import RateLimited
from chalicelib.resources import JOBS_QUEUE
from chalicelib.services import trail
from chalicelib.services.principal import Principal
from tests.support.population import import_csv
from tests.support.queues import deliver, take_messages
from tests.support.tenants import OPERATOR


def test_a_key_past_its_rate_gets_429_with_retry_after_and_others_are_not_slowed(api, tenant, other_tenant):
    viewer = tenant.viewer_key  # made before the limit is lowered
    assert api.patch("/settings", key=tenant.admin_key, json={"requests_per_second": 3}).status == 200
    started = time.monotonic()
    replies = [api.get("/tags", key=tenant.admin_key) for _ in range(12)]
    seconds = int(time.monotonic() - started) + 2  # calendar seconds the burst may have touched
    limited = [r for r in replies if r.status == 429]
    assert limited, [r.status for r in replies]
    assert len(replies) - len(limited) <= 3 * seconds
    assert limited[0].error_code == "rate_limited" and limited[0].headers["retry-after"] == "1"
    assert limited[0].json["error"]["details"]["limit"] == 3
    assert api.get("/tags", key=other_tenant.admin_key).status == 200  # another tenant
    assert api.get("/tags", key=viewer).status == 200  # the viewer key has its own window
    time.sleep(1.1)
    assert api.get("/tags", key=tenant.admin_key).status == 200  # the next second
    api.patch("/settings", key=tenant.admin_key, json={"requests_per_second": None})


def test_the_rate_is_one_conditional_write_so_a_burst_never_passes_the_limit():
    principal = Principal(kind="tenant", tenant_id="ten_rate", key_id="key_x", settings={"requests_per_second": 5})
    frozen = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    admitted = 0
    for _ in range(20):
        try:
            trail.admit(tenant_context, principal, clock=lambda: frozen)
            admitted += 1
        except RateLimited:
            pass
    assert admitted == 5


def test_every_admin_and_operator_write_is_in_the_audit_log_and_only_admins_read_it(api, tenant, other_tenant):
    key = tenant.admin_key
    api.post("/tags", key=key, json={"name": "vip"})
    contact = api.post("/contacts", key=key, json={"external_id": "p-1", "email": "ana@example.com"}).json
    api.delete(f"/contacts/{contact['id']}", key=key)
    api.patch(f"/tenants/{tenant.id}", key=OPERATOR, json={"name": "Renamed"})
    api.get("/tags", key=key)  # reads are not written down
    entries = api.get("/audit-log?limit=500", key=key).json["items"]
    actions = [e["action"] for e in entries]
    assert actions[:4] == [
        "PATCH /tenants/{tenant_id}",
        "DELETE /contacts/{contact_id}",
        "POST /contacts",
        "POST /tags",
    ]
    assert entries[1]["target"] == {"contact_id": contact["id"]}
    assert entries[2]["target"] == {"created": contact["id"]}
    assert entries[2]["key"]["id"].startswith("key_") and entries[0]["key"]["id"] == "operator"
    assert all(e["request_id"] and e["at"].endswith("Z") for e in entries)
    assert "ana@example.com" not in json.dumps(entries)
    assert api.get("/audit-log", key=tenant.viewer_key).status == 403
    assert all(e["action"] != "POST /tags" for e in api.get("/audit-log", key=other_tenant.admin_key).json["items"])


def test_a_tenant_runs_at_most_jobs_at_once_and_the_rest_wait_their_turn(api, app, tenant, other_tenant):
    assert api.patch("/settings", key=tenant.admin_key, json={"jobs_at_once": 1}).status == 200
    rows = "".join(f"a-{i}\n" for i in range(300))  # two chunks of 250 rows
    first = import_csv(api, tenant.admin_key, "external_id\n" + rows)
    second = import_csv(api, tenant.admin_key, "external_id\nb-1\n")
    elsewhere = import_csv(api, other_tenant.admin_key, "external_id\nc-1\n")
    queued = take_messages(JOBS_QUEUE)
    chunks = {job["id"]: [m for m in queued if m["job_id"] == job["id"]] for job in (first, second, elsewhere)}
    assert len(chunks[first["id"]]) == 2

    assert deliver(app, "process_job_chunks", JOBS_QUEUE, chunks[first["id"]][:1]) == []  # the first job runs
    # the second job's chunk, delivered twice, finds its tenant's one place taken: it goes back to wait
    assert deliver(app, "process_job_chunks", JOBS_QUEUE, chunks[second["id"]], times=2) == []
    assert api.get(f"/jobs/{second['id']}", key=tenant.admin_key).json["progress"]["processed"] == 0
    waiting = take_messages(JOBS_QUEUE)
    assert [m["job_id"] for m in waiting] == [second["id"]] * 2  # back on the queue: never dropped
    assert deliver(app, "process_job_chunks", JOBS_QUEUE, chunks[elsewhere["id"]]) == []  # others are not held
    assert api.get(f"/jobs/{elsewhere['id']}", key=other_tenant.admin_key).json["status"] == "succeeded"

    assert deliver(app, "process_job_chunks", JOBS_QUEUE, chunks[first["id"]][1:]) == []
    assert api.get(f"/jobs/{first['id']}", key=tenant.admin_key).json["status"] == "succeeded"
    assert deliver(app, "process_job_chunks", JOBS_QUEUE, waiting) == []  # its turn now (twice: counted once)
    done = api.get(f"/jobs/{second['id']}", key=tenant.admin_key).json
    assert done["status"] == "succeeded" and done["progress"]["processed"] == 1


def test_a_place_held_by_a_job_that_ended_is_given_back(api, app, tenant):
    from chalicelib.storage import jobs as job_store

    assert api.patch("/settings", key=tenant.admin_key, json={"jobs_at_once": 1}).status == 200
    done = import_csv(api, tenant.admin_key, "external_id\nd-1\n")
    assert deliver(app, "process_job_chunks", JOBS_QUEUE, take_messages(JOBS_QUEUE, tenant.id)) == []
    assert job_store.JobTable(tenant.id).enter_lane(done["id"], 1)  # as if its worker stopped before leaving the lane
    later = import_csv(api, tenant.admin_key, "external_id\nd-2\n")
    assert deliver(app, "process_job_chunks", JOBS_QUEUE, take_messages(JOBS_QUEUE, tenant.id)) == []
    assert api.get(f"/jobs/{later['id']}", key=tenant.admin_key).json["status"] == "succeeded"
