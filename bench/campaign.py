"""A campaign to 100,000 recipients through the local runtime's queue dispatcher, on in-process moto.

    make bench                                     # after the engine and membership tables
    BENCH_CAMPAIGN_RECIPIENTS=20000 python -m bench.campaign

Loads a tenant whose contacts all carry the tag ``news`` (straight into storage,
as the membership bench does), evaluates the segment ``{"tag": "news"}`` from
the tag index, sets the tenant's send rate to the highest setting (1,000/s), and
sends one campaign through the same handlers Lambda runs, the dispatcher
delivering every message. Prints recipients per second, AWS requests per
recipient (SES, and everything else the code calls: DynamoDB and SQS sends; the
dispatcher's receives and deletes are the Lambda event source's, shown apart),
and duplicates, counted from what moto's SES received.

Then SES's engagement events for the last mails sent (BENCH_ENGAGED, 5,000 at most: the local mailbox keeps
that many): a Delivery for each, an Open for every second, a Click for every fourth, each notification queued
twice and shuffled, as SNS may deliver it; prints events applied per second, AWS requests per event, and
whether the campaign's counters came out exact.
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

import json
import os
import random
import time
from collections import Counter
from datetime import UTC, datetime

import boto3

from app import app
from chalicelib.domain.contacts import Contact, contact_id_for
from chalicelib.resources import JOBS_QUEUE, SEND_QUEUE, SES_EVENTS_QUEUE
from infra.local import mailbox
from infra.local.dispatcher import Dispatcher
from tests.support import mail
from tests.support.client import ApiClient
from tests.support.ses_events import ses_notification

EVENT_SOURCE = {"ReceiveMessage", "DeleteMessageBatch", "DeleteMessage", "ChangeMessageVisibility", "GetQueueUrl"}


def load(api: ApiClient, count: int) -> tuple[str, float]:
    tenant_id, key = new_bench_tenant(api, "Campaign bench", ("news",))
    api.patch("/settings", key=key, json={"send_rate_per_second": 1000})
    started = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    contacts = [
        Contact(
            id=contact_id_for(n),
            ordinal=n,
            external_id=f"r-{n}",
            email=f"reader{n}@example.com",
            first_name=f"Reader {n}",
            tags=frozenset({"news"}),
            attributes={"city": "Lisbon"},
            version=1,
            created_at=stamp,
            updated_at=stamp,
        )
        for n in range(1, count + 1)
    ]
    store_contacts(tenant_id, contacts)
    return key, time.perf_counter() - started


def main() -> None:
    count = int(os.environ.get("BENCH_CAMPAIGN_RECIPIENTS", "100000"))
    api = ApiClient(app)
    dispatcher = Dispatcher(app, wait_seconds=0)
    key, load_seconds = load(api, count)
    freeze_loaded_data()
    segment = api.post("/segments", key=key, json={"name": "News", "criteria": {"tag": "news"}}).json
    dispatcher.drain(queue_names=frozenset({JOBS_QUEUE}))
    campaign = api.post(
        "/campaigns",
        key=key,
        json={
            "name": "Bench",
            "from": "news@example.com",
            "subject": "Hello {{ contact.first_name }}",
            "html": "<p>Hi {{ contact.first_name }} in {{ contact.attributes.city }}</p>"
            "<a href='{{ unsubscribe_url }}'>unsubscribe</a>",
            "text": "Hi {{ contact.first_name }}. {{ unsubscribe_url }}",
            "segments": [segment["id"]],
        },
    ).json

    calls = AwsCalls()
    before = mail.mark()
    started = time.perf_counter()
    api.post(f"/campaigns/{campaign['id']}/send", key=key)
    while True:
        dispatcher.drain(queue_names=frozenset({SEND_QUEUE}))
        with calls.not_counted():
            done = api.get(f"/campaigns/{campaign['id']}", key=key).json
        if done["status"] != "sending":
            break
        time.sleep(0.5)  # a batch waiting for its send slot is back on the queue after a delay
    seconds = time.perf_counter() - started

    sent = Counter(m.to for m in mail.sent_since(before))
    duplicates = sum(n - 1 for n in sent.values() if n > 1)
    ses = sum(n for (service, _), n in calls.calls.items() if service == "sesv2")
    event_source = sum(n for (service, op), n in calls.calls.items() if service == "sqs" and op in EVENT_SOURCE)
    other = sum(calls.calls.values()) - ses - event_source
    by_operation = ", ".join(
        f"{service}.{op} {n:,}" for (service, op), n in sorted(calls.calls.items()) if service != "sesv2"
    )
    stats = done["stats"]
    rows = [
        ("(loading the tenant into moto)", f"{count:,} contacts in {load_seconds:.0f} s"),
        (
            "campaign to a segment, sent through the dispatcher",
            f"{count:,} recipients, status {done['status']}, {seconds:.0f} s = {count / seconds:,.0f} recipients/s",
        ),
        (
            "    AWS requests per recipient",
            f"{ses / count:.3f} SES + {other / count:.3f} other (target < 0.2); "
            f"Lambda event source {event_source / count:.3f}",
        ),
        ("    requests by operation (not SES)", by_operation),
        (
            "    sent exactly once",
            f"{len(sent):,} addresses, {duplicates} duplicates; stats sent {stats['sent']:,}, "
            f"unknown {stats['unknown']}, audience {stats['audience']:,}",
        ),
    ]
    print_table(rows + engagement(api, dispatcher, calls, key, campaign["id"]))


def engagement(
    api: ApiClient, dispatcher: Dispatcher, calls: AwsCalls, key: str, campaign_id: str
) -> list[tuple[str, str]]:
    tenant_id = api.get("/me", key=key).json["tenant"]["id"]
    engaged = mailbox.newest(tenant_id, int(os.environ.get("BENCH_ENGAGED", "5000")), None)
    notifications = []
    for position, sent in enumerate(engaged):
        tags = {"tenant_id": tenant_id, **sent["tags"]}
        notifications.append(ses_notification("Delivery", sent["id"], tags, minutes_ago=3))
        if position % 2 == 0:
            notifications.append(ses_notification("Open", sent["id"], tags, minutes_ago=2))
        if position % 4 == 0:
            notifications.append(ses_notification("Click", sent["id"], tags, minutes_ago=1, link="https://x.test/a"))
    queued = notifications * 2
    random.Random(5).shuffle(queued)
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=SES_EVENTS_QUEUE)["QueueUrl"]
    calls.reset()
    started = time.perf_counter()
    for start in range(0, len(queued), 1_000):  # queued as SNS would, a slice at a time: moto's cost grows with depth
        with calls.not_counted():
            for first in range(start, min(start + 1_000, len(queued)), 10):
                entries = queued[first : first + 10]
                sqs.send_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "MessageBody": json.dumps(n)} for i, n in enumerate(entries)],
                )
        dispatcher.drain(queue_names=frozenset({SES_EVENTS_QUEUE}))
    seconds = time.perf_counter() - started
    event_source = sum(n for (service, op), n in calls.calls.items() if service == "sqs" and op in EVENT_SOURCE)
    other = sum(calls.calls.values()) - event_source
    by_operation = ", ".join(f"{service}.{op} {n:,}" for (service, op), n in sorted(calls.calls.items()))
    stats = api.get(f"/campaigns/{campaign_id}", key=key).json["stats"]
    wanted = {"delivered": len(engaged), "opened": (len(engaged) + 1) // 2, "clicked": (len(engaged) + 3) // 4}
    wanted.update(opens=wanted["opened"], clicks=wanted["clicked"])
    exact = all(stats[name] == value for name, value in wanted.items())
    return [
        (
            "SES events of the campaign (each delivered twice)",
            f"{len(notifications):,} events ({len(queued):,} notifications) in {seconds:.1f} s = "
            f"{len(queued) / seconds:,.0f} notifications/s",
        ),
        (
            "    AWS requests per event",
            f"{other / len(notifications):.2f}; Lambda event source {event_source / len(notifications):.2f}",
        ),
        ("    requests by operation", by_operation),
        (
            "    counters exact",
            f"{exact}: " + ", ".join(f"{name} {stats[name]:,}/{value:,}" for name, value in wanted.items()),
        ),
    ]


if __name__ == "__main__":
    main()
