"""Previews, overview and full evaluations from shard snapshots, side by side with the item path.

    make bench                                    # every table; this one last
    BENCH_SNAPSHOT_CONTACTS=100000 BENCH_SNAPSHOT_MILLION=1000000 python -m bench.snapshots

(g) a tenant of BENCH_SNAPSHOT_CONTACTS (default the demo's 10,000) with the golden population's
    purchases and visits, through the HTTP API in process (chalice's test client, in-process moto):
    ``POST /segments/preview`` for two criteria the tag index cannot answer and ``GET /overview``
    with three facets — first while no snapshot exists (the item path: every contact and event item
    read), then after the compaction job, then with 40 contacts changed since (patched in);
    p50 / p95 over 20 calls each (5 on the item path).
(h) a full evaluation of the same tenant through the local queue dispatcher, item path vs snapshots.
(i) BENCH_SNAPSHOT_MILLION contacts (default 1,000,000): shard images built straight from the golden
    generator (loading a million contacts into moto takes hours), published to moto S3, then one
    preview's work from a cold process cache — dirty marks and manifests read, images fetched
    (bytes), decoded, evaluated — with the peak RSS of that work.
"""

from __future__ import annotations

from bench.inprocess import AwsCalls, print_table  # first: moto starts before any AWS client exists

# isort: split

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from app import app
from bench.golden import GROUPS, SEED_LOCAL_FAMILY_DISCOUNT, TYPES, generate
from bench.membership import compact_every_shard, evaluate_through_dispatcher, load_tenant, no_compaction
from bench.population import TAGS
from chalicelib.composition import tenant_context
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.contacts import SHARDS, contact_id_for
from chalicelib.domain.criteria import Vocabulary, check_criteria
from chalicelib.domain.engine import compile_criteria
from chalicelib.domain.shard_image import ImagePopulation, ShardImage
from chalicelib.storage.snapshots import SnapshotBucket
from infra.local.dispatcher import Dispatcher
from tests.support.client import ApiClient

PREVIEWS = {
    "Toronto": {"attr": "city", "op": "eq", "value": "Toronto"},
    "purchased in 60 days": {"event": "purchase", "within": "60d"},
}
FACETS = "tags,group,attributes.country"
CALLS = 20
ITEM_CALLS = 5
"""The item path takes seconds a call at the demo's size: fewer calls."""
VOCABULARY = Vocabulary(tags=frozenset(TAGS), groups=frozenset(GROUPS), attributes=TYPES, segments={}, tag_limit=10)


def _percentiles(seconds: list[float]) -> str:
    return f"p50 {statistics.median(seconds) * 1000:.0f} ms, p95 {np.percentile(seconds, 95) * 1000:.0f} ms"


def _timed(call: Any, times: int = CALLS) -> tuple[list[float], Any]:
    seconds, answer = [], None
    for _ in range(times):
        started = time.perf_counter()
        answer = call()
        seconds.append(time.perf_counter() - started)
    return seconds, answer


def _per_call(calls: AwsCalls, times: int = CALLS) -> str:
    """DynamoDB and S3 requests per interactive call (authentication and rate limiting included)."""
    per_service = {"dynamodb": 0, "s3": 0}
    for (service, _), n in calls.calls.items():
        if service in per_service:
            per_service[service] += n
    return ", ".join(f"{service} {n / (3 * times):.0f}" for service, n in per_service.items())


def _interactive(api: ApiClient, key: str, times: int = CALLS) -> dict[str, tuple[list[float], Any]]:
    figures = {}
    for name, criteria in PREVIEWS.items():
        figures[f"preview {name}"] = _timed(
            lambda c=criteria: api.post("/segments/preview", key=key, json={"criteria": c, "sample_size": 10}).json,
            times,
        )
    figures["overview, 3 facets"] = _timed(lambda: api.get(f"/overview?facets={FACETS}", key=key).json, times)
    return figures


def bench_tenant(calls: AwsCalls, count: int) -> list[tuple[str, str]]:
    api = ApiClient(app)
    dispatcher = Dispatcher(app, wait_seconds=0)
    tenant_id, key, load = load_tenant(api, count, datetime.now(UTC))
    rows = [("    (loading the tenant into moto)", f"{count:,} contacts with their events in {load:.0f} s")]

    with no_compaction():
        calls.reset()
        items = _interactive(api, key, ITEM_CALLS)
        item_requests = _per_call(calls, ITEM_CALLS)
        _, item_evaluation, _ = evaluate_through_dispatcher(
            api, dispatcher, key, SEED_LOCAL_FAMILY_DISCOUNT.criteria, "item path"
        )

    rows.append(compact_every_shard(dispatcher, tenant_id))
    calls.reset()
    snapshot = _interactive(api, key)
    snapshot_requests = _per_call(calls)

    for n in range(40):  # contacts changed since the snapshot: patched into every read
        api.post(f"/contacts/{contact_id_for(1 + n * 211 % count)}/tags", key=key, json={"add": ["vip"]})
    calls.reset()
    patched = _interactive(api, key)
    patched_requests = _per_call(calls)

    for name in items:
        item_seconds, item_answer = items[name]
        if "count" in item_answer:
            assert item_answer["count"] == snapshot[name][1]["count"], name
            assert item_answer["sample"] == snapshot[name][1]["sample"], name
        else:
            assert item_answer == snapshot[name][1], name
        rows.append(
            (
                f"(g) {name}",
                f"item path {_percentiles(item_seconds)}; snapshot {_percentiles(snapshot[name][0])}; "
                f"snapshot + 40 changed: first {patched[name][0][0] * 1000:.0f} ms (re-reads them), then "
                f"{_percentiles(patched[name][0][1:])}",
            )
        )
    rows.append(
        (
            "    requests per call",
            f"item path {item_requests}; snapshot {snapshot_requests}; snapshot + 40 changed {patched_requests} "
            "(a cold process also GETs each shard's image once from S3)",
        )
    )
    rows.append(_after_a_bulk_write(api, key, count))
    _, snapshot_evaluation, _ = evaluate_through_dispatcher(
        api, dispatcher, key, SEED_LOCAL_FAMILY_DISCOUNT.criteria, "from snapshots"
    )
    rows.append(
        (
            "(h) full evaluation, local family discount buyers",
            f"item path {item_evaluation:.1f} s; snapshots {snapshot_evaluation:.1f} s ({count:,} contacts)",
        )
    )
    return rows


def _after_a_bulk_write(api: ApiClient, key: str, count: int) -> tuple[str, str]:
    """A purchase for every contact (bulk events, 1,000 a request), then previews at once, before the
    compaction the writes asked for has run: the first reads every item and publishes it as the snapshots,
    the next ones read those."""
    at = to_rfc3339(datetime.now(UTC))
    for first in range(1, count + 1, 1000):
        events = [
            {"contact_id": contact_id_for(o), "type": "purchase", "at": at, "amount": 5}
            for o in range(first, min(first + 1000, count + 1))
        ]
        assert api.post("/events", key=key, json={"events": events}).status in (200, 201)
    criteria = PREVIEWS["purchased in 60 days"]

    def preview() -> dict:
        return api.post("/segments/preview", key=key, json={"criteria": criteria, "sample_size": 10}).json

    (first_seconds,), first = _timed(preview, 1)
    later, again = _timed(preview)
    assert first["count"] == again["count"] == count, (first["count"], again["count"])
    return (
        "(g) preview right after a bulk write",
        f"every contact bought (its compaction not run yet): the first {first_seconds * 1000:.0f} ms (reads the "
        f"items and publishes them as the snapshots), then {_percentiles(later)}",
    )


def _rss_peak() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def build_images(count: int, folder: Path) -> None:
    """``count`` golden contacts as 16 shard images in ``folder`` (run in a process of its own: generating a
    million contacts takes gigabytes the measured process must not inherit)."""
    now = datetime.now(UTC)
    for shard in range(SHARDS):
        people = generate(count // SHARDS, now, seed=100 + shard)
        for k, person in enumerate(people):
            person.ordinal = shard + SHARDS * (k + 1)
            person.id = contact_id_for(person.ordinal)
        (folder / f"{shard:02d}.npz").write_bytes(ShardImage.build(people, {p.id: p.events for p in people}).to_bytes())


def bench_million(count: int) -> list[tuple[str, str]]:
    """Run in a fresh process (``--million``): the images are built by another, stored in moto S3, and the peak
    RSS is reset before the preview's work starts."""
    tenant_id = f"tenant_million_{count}"
    store = SnapshotBucket(tenant_id)
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bench.snapshots", "--build", str(count), folder], check=True)
        built = time.perf_counter() - started
        for shard in range(SHARDS):
            data = (Path(folder) / f"{shard:02d}.npz").read_bytes()
            store.publish(shard, data, store.manifest(shard), to_rfc3339(now), count // SHARDS)
    del data
    gc.collect()

    ctx = tenant_context(tenant_id)
    Path("/proc/self/clear_refs").write_text("5")  # the peak RSS from here on
    rows = [("    (building the images in another process)", f"{count // SHARDS * SHARDS:,} contacts in {built:.0f} s")]
    timings: dict[str, float] = {"marks and manifests": 0.0, "fetch": 0.0, "decode": 0.0}
    fetched = 0
    images = []
    for shard in range(SHARDS):
        started = time.perf_counter()
        ctx.ports.contacts.dirty(shard)
        manifest = ctx.ports.snapshots.manifest(shard)
        timings["marks and manifests"] += time.perf_counter() - started
        started = time.perf_counter()
        data = ctx.ports.snapshots.load(manifest)
        timings["fetch"] += time.perf_counter() - started
        fetched += len(data)
        started = time.perf_counter()
        images.append(ShardImage.from_bytes(data))
        timings["decode"] += time.perf_counter() - started
        del data
    counts = {}
    for name, criteria in {"local family discount buyers": SEED_LOCAL_FAMILY_DISCOUNT.criteria, **PREVIEWS}.items():
        compiled = compile_criteria(check_criteria(criteria, VOCABULARY).criteria, TYPES, {}.get)
        started = time.perf_counter()
        counts[name] = sum(int(compiled.evaluate(ImagePopulation(image), now).sum()) for image in images)
        timings[f"evaluate {name}"] = time.perf_counter() - started
    reading = timings["marks and manifests"] + timings["fetch"] + timings["decode"]
    evaluate = timings["evaluate local family discount buyers"]
    rows.append(
        (
            f"(i) preview over {len(images) and sum(i.size for i in images):,} contacts from snapshots",
            f"{reading + evaluate:.2f} s for local family discount buyers ({counts['local family discount buyers']:,}"
            f" members): marks and manifests {timings['marks and manifests'] * 1000:.0f} ms, fetch "
            f"{fetched / 1e6:.0f} MB in {timings['fetch'] * 1000:.0f} ms, decode {timings['decode'] * 1000:.0f} ms, "
            f"evaluate {evaluate * 1000:.0f} ms; peak RSS {_rss_peak() / 2**30:.2f} GiB",
        )
    )
    rows.append(
        (
            "    other criteria, evaluation only",
            ", ".join(f"{name} {timings[f'evaluate {name}'] * 1000:.0f} ms ({counts[name]:,})" for name in PREVIEWS),
        )
    )
    return rows


def main() -> None:
    if sys.argv[1:2] == ["--build"]:
        build_images(int(sys.argv[2]), Path(sys.argv[3]))
        return
    if sys.argv[1:2] == ["--million"]:
        print(json.dumps(bench_million(int(sys.argv[2]))))
        return
    rows = bench_tenant(AwsCalls(), int(os.environ.get("BENCH_SNAPSHOT_CONTACTS", "10000")))
    million = os.environ.get("BENCH_SNAPSHOT_MILLION", "1000000")
    child = subprocess.run(
        [sys.executable, "-m", "bench.snapshots", "--million", million], check=True, capture_output=True, text=True
    )
    rows += [tuple(row) for row in json.loads(child.stdout.strip().splitlines()[-1])]
    print_table(rows)


if __name__ == "__main__":
    main()
