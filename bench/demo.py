"""``make demo``: load a generated tenant into a running ``make run`` and print how to explore it."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

from bench.population import GROUPS, TAGS, generate

BASE = os.environ.get("SEGMENTS_URL", f"http://127.0.0.1:{os.environ.get('PORT', '8000')}")
OPERATOR = os.environ.get("SEGMENTS_OPERATOR_KEY", "local-operator-key")


def call(method: str, path: str, key: str, body: object = None, content_type: str = "application/json") -> dict:
    data = None if body is None else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            raw = response.read()
            return json.loads(raw) if raw else {}
    except urllib.error.HTTPError as error:
        sys.exit(f"{method} {path} failed: {error.code} {error.read().decode()}")
    except urllib.error.URLError:
        sys.exit(f"Nothing answers at {BASE}: start the service with `make run` first.")


def main() -> None:
    count = int(os.environ.get("DEMO_CONTACTS", "10000"))
    population = generate(count)
    tenant = call("POST", "/tenants", OPERATOR, {"name": "Demo Events Co."})
    admin = tenant["admin_key"]
    call("PATCH", f"/tenants/{tenant['id']}", OPERATOR, {"features": {"segments": True}})
    for tag in TAGS:
        call("POST", "/tags", admin, {"name": tag})
    for group in GROUPS:
        call("POST", "/groups", admin, {"name": group})
    started = time.perf_counter()
    job = call("POST", "/contacts/import", admin, population.contacts_csv, "text/csv")
    shown = started
    while job["status"] == "running":
        time.sleep(0.5)  # often, so the rate printed below is the import's, not the polling's
        job = call("GET", f"/jobs/{job['id']}", admin)
        if time.perf_counter() - shown >= 5:
            shown = time.perf_counter()
            print(f"  importing: {job['progress']['processed']}/{job['progress']['total']} rows", flush=True)
    elapsed = time.perf_counter() - started
    print(f"  import {job['status']}: {job['counts']} in {elapsed:.1f} s ({count / elapsed:.0f} rows/s)")
    started = time.perf_counter()
    for start in range(0, len(population.events), 1000):
        call("POST", "/events", admin, {"events": population.events[start : start + 1000]})
    posted = time.perf_counter()
    elapsed = posted - started
    print(f"  {len(population.events)} purchases posted in {elapsed:.1f} s ({len(population.events) / elapsed:.0f}/s)")
    wait_until_caught_up(admin, build_seed_segments(admin), posted)
    print(f"""
Demo tenant ready: {tenant["id"]}
  admin key: {admin}

Try:
  curl -s {BASE}/tags -H 'Authorization: Bearer {admin}'
  curl -s '{BASE}/contacts?tag=vip&limit=5' -H 'Authorization: Bearer {admin}'
  curl -s {BASE}/contacts/p-000042 -H 'Authorization: Bearer {admin}'
  curl -s {BASE}/contacts/p-000042/events -H 'Authorization: Bearer {admin}'
  curl -s {BASE}/jobs/{job["id"]} -H 'Authorization: Bearer {admin}'
  curl -s {BASE}/segments -H 'Authorization: Bearer {admin}'
  curl -s '{BASE}/overview?facets=tags,group,attributes.country' -H 'Authorization: Bearer {admin}'
""")


LOCAL_FAMILY_DISCOUNT = {
    "all": [
        {"attr": "city", "op": "eq", "value": "Toronto"},
        {"event": "purchase", "within": "365d", "where": [{"prop": "category", "op": "eq", "value": "family"}]},
        {
            "event": "purchase",
            "agg": "share",
            "op": "gt",
            "value": 0.5,
            "where": [{"prop": "discounted", "op": "eq", "value": True}],
        },
    ]
}


def wait_until_ready(admin: str, segment: dict) -> tuple[dict, float]:
    started = time.perf_counter()
    while segment["status"] == "evaluating":
        time.sleep(0.5)
        segment = call("GET", f"/segments/{segment['id']}", admin)
    return segment, time.perf_counter() - started


def wait_until_caught_up(admin: str, segments: list[dict], since: float, patience: float = 600) -> None:
    """Real-time membership follows every change the demo made: wait until each segment's stored member count
    equals a fresh preview of its criteria, and say how long after the last purchase that was."""
    while True:
        behind = []
        for segment in segments:
            stored = call("GET", f"/segments/{segment['id']}", admin)
            preview = call("POST", "/segments/preview", admin, {"criteria": stored["criteria"], "sample_size": 0})
            if stored["member_count"] != preview["count"]:
                behind.append(f"{stored['name']} {stored['member_count']}/{preview['count']}")
        waited = time.perf_counter() - since
        if not behind:
            print(f"  every segment's members equal its preview {waited:.0f} s after the last purchase was posted")
            return
        if waited > patience:
            print(f"  still behind after {waited:.0f} s: {', '.join(behind)}")
            return
        time.sleep(2)


def build_seed_segments(admin: str) -> list[dict]:
    """The seed's example: preview, save, then mix with a tag segment; return the three segments."""
    started = time.perf_counter()
    preview = call("POST", "/segments/preview", admin, {"criteria": LOCAL_FAMILY_DISCOUNT, "sample_size": 3})
    print(
        f"  preview 'local family discount buyers': {preview['count']} of {preview['contacts_evaluated']} "
        f"contacts in {time.perf_counter() - started:.1f} s"
    )
    local = call(
        "POST", "/segments", admin, {"name": "Local family discount buyers", "criteria": LOCAL_FAMILY_DISCOUNT}
    )
    vip = call("POST", "/segments", admin, {"name": "VIP partners", "criteria": {"tag": "vip"}})
    for segment in (local, vip):
        segment, waited = wait_until_ready(admin, segment)
        print(f"  segment {segment['name']!r}: {segment['member_count']} members, evaluated in {waited:.1f} s")
    mixer = call(
        "POST",
        "/segments",
        admin,
        {"name": "Family promo audience", "criteria": {"any": [{"segment": local["id"]}, {"segment": vip["id"]}]}},
    )
    mixer, waited = wait_until_ready(admin, mixer)
    print(f"  mixer {mixer['name']!r}: {mixer['member_count']} members, evaluated in {waited:.1f} s")
    return [local, vip, mixer]


if __name__ == "__main__":
    main()
