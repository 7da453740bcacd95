"""Latency of the automated-tagging chain through the local runtime's queue dispatcher, on in-process moto.

    make bench                                  # after the other tables
    BENCH_TRIGGER_CONTACTS=100 python -m bench.triggers

A tenant with BENCH_TRIGGER_BACKGROUND contacts (default 10,000, written straight
into storage) has two triggers: ``contact.created`` with the condition
city = Lisbon → ``add_tag partner``; ``segment.entered`` of the segment
``{"tag": "partner"}`` → ``reward``. Then contacts in Lisbon are created one at
a time through the API, and after each the dispatcher runs every queue until
the chain has finished. Printed: p50/p95 from the POST to the contact-changes queue
being done (the contact.created trigger has tagged the contact and membership has
queued segment.entered) and to the membership-events queue being done (the
segment.entered trigger has written the reward), and the AWS requests per contact.

What this measures is the work of the handlers (on moto, in one process). The
second table is the same chain through the real local runtime (``make run``: moto
server, the API over HTTP, the dispatcher long-polling SQS), timed from the POST
until ``GET /contacts/{id}/rewards`` (polled every 20 ms) shows the reward — what a
user of ``make run`` sees. In AWS the Lambda event source adds its own polling to
each hop.
"""

from __future__ import annotations

from bench.inprocess import (  # first: moto starts before any AWS client exists
    AwsCalls,
    freeze_loaded_data,
    new_bench_tenant,
    print_table,
    store_contacts,
)

# isort: split

import os
import statistics
import time
from datetime import UTC, datetime

import numpy as np

from app import app
from chalicelib.config import LOCAL_OPERATOR_KEY
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.contacts import Contact, contact_id_for
from chalicelib.resources import CONTACT_CHANGES_QUEUE, JOBS_QUEUE, MEMBERSHIP_EVENTS_QUEUE
from chalicelib.storage.contacts import ContactTable
from chalicelib.storage.engagements import EngagementTable
from infra.local.dispatcher import Dispatcher
from tests.support.client import ApiClient
from tests.support.runtime import LocalRuntime

TAGGING = {
    "name": "Tag new Lisbon partners",
    "event": {"type": "contact.created"},
    "conditions": {"attr": "city", "op": "eq", "value": "Lisbon"},
    "actions": [{"type": "add_tag", "tag": "partner"}],
}


def rewarding(segment_id: str) -> dict:
    return {
        "name": "Welcome partners",
        "event": {"type": "segment.entered", "segments": [segment_id]},
        "actions": [{"type": "reward", "amount": 50, "currency": "USD"}],
    }


def load(api: ApiClient, background: int) -> tuple[str, str]:
    tenant_id, key = new_bench_tenant(api, "Trigger bench", ("partner", "news"))
    stamp = to_rfc3339(datetime.now(UTC))
    store_contacts(tenant_id, [
        Contact(id=contact_id_for(n), ordinal=n, external_id=f"b-{n}", email=f"b{n}@example.com",
                tags=frozenset({"news", "partner"} if n % 3 == 0 else {"news"}), attributes={"city": "Porto"},
                version=1, created_at=stamp, updated_at=stamp)
        for n in range(1, background + 1)
    ])  # fmt: skip
    return tenant_id, key


def main() -> None:
    count = int(os.environ.get("BENCH_TRIGGER_CONTACTS", "100"))
    background = int(os.environ.get("BENCH_TRIGGER_BACKGROUND", "10000"))
    api = ApiClient(app)
    dispatcher = Dispatcher(app, wait_seconds=0)
    tenant_id, key = load(api, background)
    freeze_loaded_data()
    partners = api.post("/segments", key=key, json={"name": "Partners", "criteria": {"tag": "partner"}}).json
    dispatcher.drain(queue_names=frozenset({JOBS_QUEUE}))
    api.post("/triggers", key=key, json=TAGGING)
    api.post("/triggers", key=key, json=rewarding(partners["id"]))

    calls = AwsCalls()
    tagged, rewarded = [], []
    for n in range(count):
        started = time.perf_counter()
        contact = api.post(
            "/contacts",
            key=key,
            json={"external_id": f"new-{n}", "email": f"new{n}@example.com", "attributes": {"city": "Lisbon"}},
        ).json
        dispatcher.drain(queue_names=frozenset({CONTACT_CHANGES_QUEUE}))  # created → trigger → tag → membership
        tagged.append(time.perf_counter() - started)
        dispatcher.drain(queue_names=frozenset({MEMBERSHIP_EVENTS_QUEUE}))  # segment.entered → trigger → reward
        rewarded.append(time.perf_counter() - started)
        with calls.not_counted():
            stored = ContactTable(tenant_id).get_contact(contact["id"])
            assert "partner" in stored.tags, "the contact.created trigger did not tag"
            assert EngagementTable(tenant_id).all_rewards(stored.id, stored.ordinal), "no reward"

    requests = sum(calls.calls.values())
    rows = [
        ("(loading the tenant into moto)", f"{background:,} contacts, a third of them partners"),
        (
            "contact created → tagged by the contact.created trigger",
            f"p50 {statistics.median(tagged) * 1000:.0f} ms, p95 {np.percentile(tagged, 95) * 1000:.0f} ms "
            f"over {count}",
        ),
        (
            "contact created → rewarded by the segment.entered trigger",
            f"p50 {statistics.median(rewarded) * 1000:.0f} ms, p95 {np.percentile(rewarded, 95) * 1000:.0f} ms "
            f"over {count}",
        ),
        ("    AWS requests per new contact (API + every hop)", f"{requests / count:.1f}"),
        *through_make_run(count),
    ]
    print_table(rows)


def through_make_run(count: int) -> list[tuple[str, str]]:
    runtime = LocalRuntime()
    try:
        _, tenant = runtime.call("POST", "/tenants", LOCAL_OPERATOR_KEY, {"name": "Trigger bench"})
        runtime.call("PATCH", f"/tenants/{tenant['id']}", LOCAL_OPERATOR_KEY, {"features": {"segments": True}})
        key = tenant["admin_key"]
        runtime.call("POST", "/tags", key, {"name": "partner"})
        _, segment = runtime.call("POST", "/segments", key, {"name": "Partners", "criteria": {"tag": "partner"}})
        while runtime.call("GET", f"/segments/{segment['id']}", key)[1]["status"] != "ready":
            time.sleep(0.2)
        runtime.call("POST", "/triggers", key, TAGGING)
        runtime.call("POST", "/triggers", key, rewarding(segment["id"]))
        latencies = []
        for n in range(count):
            started = time.perf_counter()
            body = {"external_id": f"new-{n}", "email": f"new{n}@example.com", "attributes": {"city": "Lisbon"}}
            runtime.call("POST", "/contacts", key, body)
            while not runtime.call("GET", f"/contacts/new-{n}/rewards", key)[1]["items"]:
                if time.perf_counter() - started > 60:
                    raise RuntimeError(f"new-{n} was not rewarded within a minute")
                time.sleep(0.02)
            latencies.append(time.perf_counter() - started)
    finally:
        runtime.stop()
    return [
        (
            "make run: contact created → rewarded (HTTP, SQS long polls)",
            f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {np.percentile(latencies, 95) * 1000:.0f} ms "
            f"over {count}",
        )
    ]


if __name__ == "__main__":
    main()
