"""Journeys: entries, wake-ups per second and AWS requests per step and contact, on in-process moto.

    make bench
    BENCH_JOURNEY_CONTACTS=5000 python -m bench.journeys

A tenant with BENCH_JOURNEY_CONTACTS contacts (default 2,000, written straight into storage), all in the
segment "News", has a journey entered by a schedule over that segment: ``add_tag`` → ``wait P1D`` →
``reward``. With an injected clock (a day takes no time):

(m) the run: the minute schedule queues the members 100 a message; each message enters its contacts, who
    take the tag and start waiting — entries/s and AWS requests per contact;
(n) the day after: the minute schedule reads the due-time index and queues the waits that are over; the wake
    messages move each contact on to its reward and the end — wake-ups/s, the index drain on its own, and AWS
    requests per contact (the wake-up and the reward step);
(o) ``wait_for_event``: a contact waiting for a purchase posts one through the API; the contact-changes queue
    moves it on at once (no minute drain) — p50/p95 from the POST to the wait being over.

Every AWS call the service makes is counted (SQS and DynamoDB); the bench's own checks are not.
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
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np

from app import app
from chalicelib.composition import due_journeys, scheduled_journeys, tenant_context
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.contacts import Contact, contact_id_for
from chalicelib.resources import CONTACT_CHANGES_QUEUE, JOBS_QUEUE, JOURNEYS_QUEUE
from chalicelib.services import journey_flow
from chalicelib.storage.journeys import JourneyTable
from infra.local.dispatcher import Dispatcher
from tests.support.client import ApiClient
from tests.support.queues import take_messages


def load(api: ApiClient, contacts: int) -> tuple[str, str]:
    tenant_id, key = new_bench_tenant(api, "Journey bench", ("news", "welcomed"))
    stamp = to_rfc3339(datetime.now(UTC))
    store_contacts(tenant_id, [
        Contact(id=contact_id_for(n), ordinal=n, external_id=f"j-{n}", email=f"j{n}@example.com",
                tags=frozenset({"news"}), version=1, created_at=stamp, updated_at=stamp)
        for n in range(1, contacts + 1)
    ])  # fmt: skip
    return tenant_id, key


def per_contact(calls: Counter, contacts: int) -> str:
    """AWS requests per contact, the total and the three commonest operations."""
    total = sum(calls.values())
    top = ", ".join(f"{operation} {count / contacts:.2f}" for (_, operation), count in calls.most_common(3))
    return f"{total / contacts:.2f} ({top})"


def run_messages(tenant_id: str, moment: datetime) -> int:
    """Every message on the journeys queue handled at ``moment``; how many contacts moved."""
    moved = 0
    while messages := take_messages(JOURNEYS_QUEUE, tenant_id):
        moved += sum(journey_flow.handle(tenant_context(tenant_id), m, lambda: moment) for m in messages)
    return moved


def main() -> None:
    contacts = int(os.environ.get("BENCH_JOURNEY_CONTACTS", "2000"))
    api = ApiClient(app)
    dispatcher = Dispatcher(app, wait_seconds=0)
    tenant_id, key = load(api, contacts)
    news = api.post("/segments", key=key, json={"name": "News", "criteria": {"tag": "news"}}).json
    dispatcher.drain(queue_names=frozenset({JOBS_QUEUE}))
    freeze_loaded_data()
    journey = api.post("/journeys", key=key, json={
        "name": "Weekly welcome",
        "entry": {"type": "schedule", "expression": "rate(7 days)", "segments": [news["id"]]},
        "start": "tag",
        "steps": {"tag": {"type": "add_tag", "tag": "welcomed", "next": "wait"},
                  "wait": {"type": "wait", "duration": "P1D", "next": "reward"},
                  "reward": {"type": "reward", "amount": 5, "currency": "USD", "next": None}},
    }).json  # fmt: skip
    take_messages(CONTACT_CHANGES_QUEUE, tenant_id)  # the tags' own changes: not what is measured here

    calls = AwsCalls()
    run_at = parse_rfc3339(journey["next_run_at"]) + timedelta(seconds=1)
    started = time.perf_counter()
    journey_flow.enter_scheduled(scheduled_journeys(to_rfc3339(run_at)), tenant_context, lambda: run_at)
    entered = run_messages(tenant_id, run_at)
    entering = time.perf_counter() - started
    entry_calls = Counter(calls.calls)
    with calls.not_counted():
        take_messages(CONTACT_CHANGES_QUEUE, tenant_id)
        assert entered == contacts, (entered, contacts)

    calls.reset()
    day_after = run_at + timedelta(days=1, minutes=1)
    started = time.perf_counter()
    due = due_journeys(to_rfc3339(day_after))
    drained = time.perf_counter() - started
    journey_flow.wake_due(due, tenant_context)
    woken = run_messages(tenant_id, day_after)
    waking = time.perf_counter() - started
    wake_calls = Counter(calls.calls)
    with calls.not_counted():
        assert len(due) == woken == contacts, (len(due), woken, contacts)
        totals, steps = JourneyTable(tenant_id).counters(journey["id"])
        assert steps["reward"]["completed"] == contacts and totals["entered"] == contacts

    latencies = wait_for_event_latency(api, dispatcher, key, tenant_id, news["id"])
    print_table([
        ("(m) a scheduled run enters the members", f"{contacts:,} contacts in {entering:.1f} s: "
                                                   f"{contacts / entering:,.0f} entries/s (tag step, wait started)"),
        ("    AWS requests per contact", per_contact(entry_calls, contacts)),
        ("(n) the day after: wake-ups", f"{woken:,} in {waking:.1f} s: {woken / waking:,.0f} wake-ups/s "
                                        "(wait over, reward step, done)"),
        ("    the due-time index read on its own", f"{len(due):,} waits in {drained * 1000:.0f} ms"),
        ("    AWS requests per contact", per_contact(wake_calls, contacts)),
        ("(o) purchase → wait_for_event over", f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 "
                                               f"{np.percentile(latencies, 95) * 1000:.0f} ms over {len(latencies)} "
                                               "(the contact-changes queue; no minute drain)"),
    ])  # fmt: skip


def wait_for_event_latency(api: ApiClient, dispatcher: Dispatcher, key: str, tenant_id: str, segment: str) -> list:
    journey = api.post("/journeys", key=key, json={
        "name": "Buy within a day",
        "entry": {"type": "contact.created"},
        "start": "wait",
        "steps": {"wait": {"type": "wait_for_event", "event": "purchase", "timeout": "P1D", "then": None,
                           "timed_out": None}},
    }).json  # fmt: skip
    latencies = []
    for n in range(50):
        api.post("/contacts", key=key, json={"external_id": f"buyer-{n}", "email": f"buyer{n}@example.com"})
        dispatcher.drain(queue_names=frozenset({CONTACT_CHANGES_QUEUE}))
        started = time.perf_counter()
        event = {"id": f"buy-{n}", "type": "purchase", "amount": 10, "at": to_rfc3339(datetime.now(UTC))}
        api.post(f"/contacts/buyer-{n}/events", key=key, json={"events": [event]})
        dispatcher.drain(queue_names=frozenset({CONTACT_CHANGES_QUEUE}))
        latencies.append(time.perf_counter() - started)
        where = api.get(f"/journeys/{journey['id']}/contacts/buyer-{n}", key=key).json
        assert where["state"] == "done" and where["history"][-1]["outcome"] == "happened", where
    return latencies


if __name__ == "__main__":
    main()
