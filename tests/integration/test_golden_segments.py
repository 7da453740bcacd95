"""The golden segments through the API: preview and stored membership against DuckDB's SQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.golden import (
    GOLDEN,
    GROUPS,
    as_api_events,
    as_jsonl,
    date_days_ago,
    duckdb_oracle,
    generate,
    resolve,
    sql_for,
)
from bench.population import TAGS
from tests.support.population import import_and_wait
from tests.support.queues import drain
from tests.support.tenants import create_tenant

POPULATION = 200


@pytest.fixture(scope="module")
def golden_world(api, app, tmp_path_factory):
    now = datetime.now(UTC)
    people = generate(POPULATION, now)
    tenant = create_tenant(api, "Golden")
    key = tenant.admin_key
    for tag in TAGS:
        assert api.post("/tags", key=key, json={"name": tag}).status == 201
    groups = {}
    for group_key, name in GROUPS.items():
        groups[group_key] = api.post("/groups", key=key, json={"name": name}).json["id"]
    job = import_and_wait(api, app, key, as_jsonl(people), "application/x-ndjson")
    assert job["status"] == "succeeded", job
    events = as_api_events(people)
    for start in range(0, len(events), 1_000):
        assert api.post("/events", key=key, json={"events": events[start : start + 1_000]}).status in (200, 201)
    drain(app)  # the population is in, its changes applied: then the segments are defined
    database = duckdb_oracle(people, tmp_path_factory.mktemp("golden-api"))
    external = {p.id: p.external_id for p in people}
    segments: dict[str, str] = {}

    def lookup(text: str) -> str:
        kind, _, value = text[1:].partition(":")
        return {"group": groups.get, "segment": segments.get}.get(kind, lambda v: date_days_ago(now, text))(value)

    for golden in GOLDEN:
        reply = api.post("/segments", key=key, json={"name": golden.name, "criteria": resolve(golden.criteria, lookup)})
        assert reply.status == 201, (golden.name, reply.text)
        segments[golden.name] = reply.json["id"]
    drain(app)

    def expected(golden) -> set[str]:
        return {external[row[0]] for row in database.execute(sql_for(golden, now)).fetchall()}

    return tenant, segments, lookup, expected


@pytest.mark.parametrize("golden", GOLDEN, ids=[g.name for g in GOLDEN])
def test_preview_and_stored_membership_match_sql(api, golden_world, golden):
    tenant, segments, lookup, expected = golden_world
    want = expected(golden)
    preview = api.post(
        "/segments/preview",
        key=tenant.viewer_key,
        json={"criteria": resolve(golden.criteria, lookup), "sample_size": 50},
    ).json
    assert preview["count"] == len(want)
    if preview["plan"] == "index":  # tags only: answered from the tag index, no contact read
        assert preview["contacts_evaluated"] == 0
    else:  # every contact, or the candidates the tag index leaves
        assert preview["count"] <= preview["contacts_evaluated"] <= POPULATION
    assert {c["external_id"] for c in preview["sample"]} <= want
    segment = api.get(f"/segments/{segments[golden.name]}", key=tenant.viewer_key).json
    assert segment["status"] == "ready" and segment["member_count"] == len(want)
    stored, cursor = set(), None
    while True:
        page = api.get(
            f"/segments/{segment['id']}/members?limit=500" + (f"&cursor={cursor}" if cursor else ""),
            key=tenant.viewer_key,
        ).json
        stored |= {c["external_id"] for c in page["items"]}
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert stored == want
