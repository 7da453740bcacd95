"""A storm: writers change tags, attributes and events, delete and recreate contacts, while readers preview and
the queues run as deployed (the local dispatcher's pollers on every queue, compactions included). Once it is
quiet, every segment's stored members equal a fresh evaluation — from the items and from the snapshots —
without anyone asking for a re-evaluation."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

from chalicelib.composition import tenant_context
from chalicelib.domain.contacts import SHARDS
from chalicelib.domain.shard_image import ImagePopulation
from chalicelib.services.shards import ItemShards
from infra.local.dispatcher import Dispatcher
from tests.support.population import import_and_wait
from tests.support.queues import drain

CITIES = ["Toronto", "Paris", "Lyon"]
PEOPLE = 40
WRITERS, STEPS = 4, 20


def _members(images, compiled, now) -> set[int]:
    found: set[int] = set()
    for image in images:
        found |= {int(o) for o in image.ordinals[compiled.evaluate(ImagePopulation(image), now)]}
    return found


def _writer(api, key: str, seed: int, failures: list[str], done: list[int]) -> None:
    rng = random.Random(seed)
    for _ in range(STEPS):
        person = f"p-{rng.randrange(PEOPLE)}"
        roll = rng.random()
        if roll < 0.3:
            method = api.post if rng.random() < 0.5 else api.delete
            reply = method(f"/tags/{rng.choice(['vip', 'local'])}/contacts", key=key, json={"contact_ids": [person]})
        elif roll < 0.55:
            reply = api.patch(f"/contacts/{person}", key=key, json={"attributes": {"city": rng.choice(CITIES)}})
        elif roll < 0.8:
            at = (datetime.now(UTC) - timedelta(days=rng.choice([1, 5, 40]))).isoformat()
            reply = api.post(f"/contacts/{person}/events", key=key, json={"events": [{"type": "purchase", "at": at}]})
        elif roll < 0.9:
            reply = api.delete(f"/contacts/{person}", key=key)
        else:
            reply = api.post("/contacts", key=key, json={"external_id": person, "attributes": {"city": "Toronto"}})
        if reply.status >= 500:
            failures.append(f"{reply.status} {reply.text}")
        done.append(reply.status)


def test_after_a_storm_every_segment_equals_a_fresh_evaluation_without_a_re_evaluation(api, app, tenant):
    key = tenant.admin_key
    for tag in ("vip", "local"):
        api.post("/tags", key=key, json={"name": tag})
    rows = "".join(f"p-{n},{CITIES[n % 3]},{'vip' if n % 4 == 0 else ''}\n" for n in range(PEOPLE))
    assert import_and_wait(api, app, key, "external_id,attributes.city,tags\n" + rows)["status"] == "succeeded"
    definitions = {
        "VIP": {"tag": "vip"},
        "Toronto": {"attr": "city", "op": "eq", "value": "Toronto"},
        "Bought this month": {"event": "purchase", "within": "30d"},
        "Local buyers, not VIP": {"all": [{"tag": "local"}, {"event": "purchase"}, {"not": {"tag": "vip"}}]},
    }
    ids = {
        name: api.post("/segments", key=key, json={"name": name, "criteria": c}).json["id"]
        for name, c in definitions.items()
    }
    ids["Mixer"] = api.post(
        "/segments",
        key=key,
        json={"name": "Mixer", "criteria": {"any": [{"segment": ids["VIP"]}, {"segment": ids["Toronto"]}]}},
    ).json["id"]
    drain(app)

    dispatcher = Dispatcher(app, wait_seconds=1)
    dispatcher.start(pollers_per_queue=2)
    failures: list[str] = []
    done: list[int] = []
    try:
        threads = [threading.Thread(target=_writer, args=(api, key, seed, failures, done)) for seed in range(WRITERS)]
        previews = [{"criteria": c, "sample_size": 0} for c in definitions.values()]
        reader = threading.Thread(
            target=lambda: [api.post("/segments/preview", key=key, json=p) for _ in range(3) for p in previews]
        )
        for thread in [*threads, reader]:
            thread.start()
        for thread in [*threads, reader]:
            thread.join()
    finally:
        dispatcher.stop()
    drain(app)  # quiet: whatever the pollers left
    assert failures == []
    assert sum(status < 300 for status in done) > WRITERS * STEPS // 2  # most writes landed (the rest: 404s, 409s)

    ctx = tenant_context(tenant.id)
    published = [ctx.ports.snapshots.manifest(shard) for shard in range(SHARDS)]
    assert any(manifest and manifest.key for manifest in published)  # the readers' compactions ran
    now = datetime.now(UTC)
    by_id = {s.id: s for s in ctx.segments}
    for name, segment_id in ids.items():
        segment = by_id[segment_id]
        assert segment.status == "ready", name
        compiled = ctx.compiled(segment)
        from_items = _members(ItemShards(ctx.ports.contacts).images(range(SHARDS)), compiled, now)
        from_snapshots = _members(ctx.shards.images(range(SHARDS)), compiled, now)
        stored = set(ctx.ports.segments.members(segment_id, segment.generation))
        assert stored == from_items == from_snapshots, name
        assert segment.member_count == len(stored), name
