"""Small helpers that build tenant data through the public API."""

from __future__ import annotations

from typing import Any

from chalicelib.resources import JOBS_QUEUE
from tests.support.queues import drain


def import_csv(api: Any, key: str, text: str, content_type: str = "text/csv") -> dict:
    reply = api.post("/contacts/import", key=key, body=text, headers={"content-type": content_type})
    assert reply.status == 202, reply.text
    return reply.json


def import_and_wait(api: Any, app: Any, key: str, text: str, content_type: str = "text/csv") -> dict:
    job = import_csv(api, key, text, content_type)
    drain(app, JOBS_QUEUE)  # the contact changes it queued stay for the caller to inspect or drain
    return api.get(f"/jobs/{job['id']}", key=key).json


def many_contacts(api: Any, app: Any, key: str, count: int, prefix: str = "c") -> list[str]:
    text = "external_id,email\n" + "".join(f"{prefix}-{i},{prefix}{i}@example.com\n" for i in range(count))
    job = import_and_wait(api, app, key, text)
    assert job["status"] == "succeeded", job
    ids, cursor = [], None
    while True:
        page = api.get("/contacts?limit=500" + (f"&cursor={cursor}" if cursor else ""), key=key).json
        ids += [c["id"] for c in page["items"] if c["external_id"].startswith(f"{prefix}-")]
        cursor = page["next_cursor"]
        if not cursor:
            return ids
