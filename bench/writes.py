"""Write throughput: an import and bulk events, with the DynamoDB write requests and items each row costs.

    make bench
    BENCH_WRITE_ROWS=10000 python -m bench.writes

(k) a CSV import of BENCH_WRITE_ROWS contacts (default 2,000) through ``POST /contacts/import``, its job
    drained by the local dispatcher: rows/s, write requests and items a row; then, on its own, the compaction
    of every shard the finished import asks for;
(l) their purchases and visits through ``POST /events`` in requests of 1,000 events: events/s, write
    requests and items an event — batched across the request's contacts (outbox messages, dirty marks
    and events each in batch writes), side by side with contact by contact in the same run.

In-process moto, through Chalice's test client; requests and items counted from every DynamoDB call
(``TransactWriteItems`` and ``BatchWriteItem`` count each item they carry).
"""

from __future__ import annotations

from bench.inprocess import AwsCalls, new_bench_tenant, print_table  # first: moto starts before any AWS client exists

# isort: split

import os
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from botocore.client import BaseClient

from app import app
from bench.golden import GROUPS, as_api_events, as_jsonl, generate
from bench.population import TAGS
from chalicelib.resources import JOBS_QUEUE
from chalicelib.services import shards
from chalicelib.storage.contacts import ContactTable
from infra.local.dispatcher import Dispatcher
from tests.support.client import ApiClient

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


class WriteItems:
    """Items carried by DynamoDB write calls, by operation."""

    def __init__(self) -> None:
        self.items: Counter[str] = Counter()
        original = BaseClient._make_api_call
        counter = self

        def counted(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            if client.meta.service_model.service_name == "dynamodb" and operation in WRITES:
                if operation == "BatchWriteItem":
                    counter.items[operation] += sum(len(v) for v in params["RequestItems"].values())
                elif operation == "TransactWriteItems":
                    counter.items[operation] += len(params["TransactItems"])
                else:
                    counter.items[operation] += 1
            return original(client, operation, params)

        BaseClient._make_api_call = counted  # type: ignore[method-assign]


def _writes(calls: AwsCalls, items: WriteItems, per: int) -> str:
    requests = sum(n for (service, op), n in calls.calls.items() if service == "dynamodb" and op in WRITES)
    return f"{requests / per:.2f} write requests and {sum(items.items.values()) / per:.2f} items"


def _measure(calls: AwsCalls, items: WriteItems, work: Any) -> float:
    calls.reset()
    items.items.clear()
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    rows = int(os.environ.get("BENCH_WRITE_ROWS", "2000"))
    calls, items = AwsCalls(), WriteItems()
    api = ApiClient(app)
    dispatcher = Dispatcher(app, wait_seconds=0)
    _, key = new_bench_tenant(api, "Writes", TAGS)
    for name in GROUPS.values():
        api.post("/groups", key=key, json={"name": name})
    people = generate(rows, datetime.now(UTC))

    asked: list[tuple[Any, list[int]]] = []
    start_compaction = shards.start_compaction
    shards.start_compaction = lambda ctx, due, *_, **__: asked.append((ctx, due))  # type: ignore[assignment]

    def import_rows() -> None:
        headers = {"content-type": "application/x-ndjson"}
        job = api.post("/contacts/import", key=key, body=as_jsonl(people), headers=headers).json
        dispatcher.drain(queue_names=frozenset({JOBS_QUEUE}))
        assert api.get(f"/jobs/{job['id']}", key=key).json["counts"]["created"] == rows

    def compact_imported() -> None:  # what the finished import asked for, measured on its own
        for ctx, due in asked:
            start_compaction(ctx, due)
        dispatcher.drain(queue_names=frozenset({JOBS_QUEUE}))

    seconds = _measure(calls, items, import_rows)
    shards.start_compaction = start_compaction  # type: ignore[assignment]
    lines = [
        (
            "(k) import",
            f"{rows:,} rows in {seconds:.1f} s: {rows / seconds:.0f} rows/s, {_writes(calls, items, rows)} a row",
        )
    ]
    seconds = _measure(calls, items, compact_imported)
    lines.append(("    then the compaction it asked for", f"{len(asked[0][1])} shards in {seconds:.1f} s"))

    events = as_api_events(people)
    halves = {"batched across contacts": events[::2], "contact by contact": events[1::2]}
    batched = ContactTable.put_events_many
    for name, chosen in halves.items():
        if name == "contact by contact":  # the path before: marks, events and marks written for each contact alone
            ContactTable.put_events_many = lambda self, appends: [batched(self, [one]) for one in appends]  # type: ignore[method-assign]

        def post(chosen: list[dict] = chosen) -> None:
            for start in range(0, len(chosen), 1000):
                assert api.post("/events", key=key, json={"events": chosen[start : start + 1000]}).status in (200, 201)

        seconds = _measure(calls, items, post)
        lines.append(
            (
                f"(l) bulk events, {name}",
                f"{len(chosen):,} events in {seconds:.1f} s: {len(chosen) / seconds:.0f} events/s, "
                f"{_writes(calls, items, len(chosen))} an event",
            )
        )
    print_table(lines)


if __name__ == "__main__":
    main()
