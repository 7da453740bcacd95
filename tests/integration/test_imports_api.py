import json

import pytest

from chalicelib.resources import JOBS_DEAD_LETTER_QUEUE, JOBS_QUEUE
from tests.support.jobs import failing, replace_worker
from tests.support.population import import_and_wait, import_csv
from tests.support.queues import deliver, drain, sqs_event, take_changes, take_messages

HEADER = "external_id,email,first_name,group,tags,attributes.city,attributes.lifetime_value\n"


@pytest.fixture
def shop(api, tenant):
    for name in ("vip", "family"):
        api.post("/tags", key=tenant.admin_key, json={"name": name})
    api.post("/groups", key=tenant.admin_key, json={"name": "Locals"})
    take_changes()
    return tenant


def rows(count, start=0):
    return "".join(
        f"p-{i},c{i}@example.com,Name{i},Locals,vip;family,City{i},{i}.5\n" for i in range(start, start + count)
    )


def all_contacts(api, key):
    found, cursor = [], None
    while True:
        page = api.get("/contacts?limit=500" + (f"&cursor={cursor}" if cursor else ""), key=key).json
        found += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return sorted(found, key=lambda c: c["external_id"])


def test_csv_import_creates_typed_contacts_and_reports_progress(api, app, shop):
    job = import_and_wait(api, app, shop.admin_key, HEADER + rows(30))
    assert job["status"] == "succeeded"
    assert job["counts"] == {"created": 30, "updated": 0, "unchanged": 0, "failed": 0}
    assert job["progress"]["processed"] == 30 and job["progress"]["percent"] == 100.0
    contacts = all_contacts(api, shop.admin_key)
    assert len(contacts) == 30
    first = next(c for c in contacts if c["external_id"] == "p-3")
    assert first["tags"] == ["family", "vip"] and first["attributes"] == {"city": "City3", "lifetime_value": 3.5}
    assert first["group"].startswith("grp_")
    assert api.get("/tags/vip", key=shop.admin_key).json["contact_count"] == 30
    assert len(take_changes(shop.id)) == 30


def test_broken_quote_on_line_7_is_reported_and_the_rest_lands(api, app, shop):
    lines = rows(10).splitlines()
    lines[5] = 'p-5,c5@example.com,"Broken,Locals,vip,City5,5.5'  # file line 7
    job = import_and_wait(api, app, shop.admin_key, HEADER + "\n".join(lines) + "\n")
    assert job["status"] == "completed_with_errors"
    assert job["counts"] == {"created": 9, "updated": 0, "unchanged": 0, "failed": 1}
    assert [e["line"] for e in job["errors"]] == [7]
    assert "p-5" not in {c["external_id"] for c in all_contacts(api, shop.admin_key)}


def test_row_problems_are_reported_by_line_with_the_field(api, app, shop):
    text = HEADER + (
        "p-1,good@example.com,Good,,,,\n"
        "p-2,not-an-email,Bad,,,,\n"
        "p-3,c3@example.com,Tagless,,gold,,\n"
        "p-4,c4@example.com,Money,,,,lots\n"
        "p-5,c5@example.com,Nowhere,Atlantis,,,\n"
        "p-6,good@example.com,Twin,,,,\n"
    )
    job = import_and_wait(api, app, shop.admin_key, text)
    problems = {e["line"]: e["field"] for e in job["errors"]}
    assert problems == {3: "email", 4: "tags", 5: "attributes.lifetime_value", 6: "group", 7: "email"}
    assert job["counts"]["created"] == 1
    errors = api.get(f"/jobs/{job['id']}/errors?limit=2", key=shop.admin_key).json
    assert len(errors["items"]) == 2 and errors["next_cursor"]


def test_jsonl_import_and_update_by_email(api, app, shop):
    api.post("/contacts", key=shop.admin_key, json={"email": "ana@example.com", "first_name": "Ana"})
    text = (
        "\n".join(
            json.dumps(r)
            for r in [
                {"email": "ANA@example.com", "last_name": "Silva", "attributes": {"visits": 3}},
                {"email": "bo@example.com", "tags": ["vip"]},
            ]
        )
        + "\n"
    )
    reply = api.post(
        "/contacts/import", key=shop.admin_key, body=text, headers={"content-type": "application/x-ndjson"}
    )
    assert reply.status == 202
    drain(app)
    job = api.get(f"/jobs/{reply.json['id']}", key=shop.admin_key).json
    assert job["counts"] == {"created": 1, "updated": 1, "unchanged": 0, "failed": 0}
    ana = next(c for c in all_contacts_by_email(api, shop) if c["email"] == "ana@example.com")
    assert ana["first_name"] == "Ana" and ana["last_name"] == "Silva" and ana["attributes"] == {"visits": 3}


def all_contacts_by_email(api, tenant):
    return api.get("/contacts?limit=500", key=tenant.admin_key).json["items"]


def test_importing_the_same_file_twice_changes_nothing(api, app, shop):
    text = HEADER + rows(40)
    import_and_wait(api, app, shop.admin_key, text)
    before = all_contacts(api, shop.admin_key)
    take_changes()
    second = import_and_wait(api, app, shop.admin_key, text)
    assert second["counts"] == {"created": 0, "updated": 0, "unchanged": 40, "failed": 0}
    assert all_contacts(api, shop.admin_key) == before
    assert take_changes(shop.id) == []


def test_import_chunks_delivered_twice_and_shuffled_give_the_same_result(api, app, shop):
    text = HEADER + rows(600)  # three chunks
    job = import_csv(api, shop.admin_key, text)
    chunks = take_messages(JOBS_QUEUE, shop.id)
    assert len(chunks) == 3
    assert deliver(app, "process_job_chunks", JOBS_QUEUE, chunks, times=2) == []
    final = api.get(f"/jobs/{job['id']}", key=shop.admin_key).json
    assert final["status"] == "succeeded"
    assert final["counts"] == {"created": 600, "updated": 0, "unchanged": 0, "failed": 0}
    assert final["progress"]["chunks_done"] == 3
    contacts = all_contacts(api, shop.admin_key)
    assert len(contacts) == 600 and len({c["email"] for c in contacts}) == 600
    assert api.get("/tags/vip", key=shop.admin_key).json["contact_count"] == 600


def test_too_many_rows_is_refused_whole(api, shop):
    text = "email\n" + "".join(f"c{i}@example.com\n" for i in range(10_001))
    reply = api.post("/contacts/import", key=shop.admin_key, body=text, headers={"content-type": "text/csv"})
    assert reply.status == 422 and reply.error_code == "limit_exceeded" and reply.error_field == "body"
    assert take_messages(JOBS_QUEUE, shop.id) == []
    assert api.get("/contacts", key=shop.admin_key).json["items"] == []


def test_bad_import_requests(api, shop):
    for body, content_type, field in [
        ("shoe_size\n42\n", "text/csv", "header"),
        ("", "text/csv", "body"),
    ]:
        reply = api.post("/contacts/import", key=shop.admin_key, body=body, headers={"content-type": content_type})
        assert reply.status == 422 and reply.error_field == field
    wrong_type = api.post("/contacts/import", key=shop.admin_key, body="x", headers={"content-type": "image/png"})
    assert wrong_type.status == 415


def test_a_chunk_that_keeps_failing_fails_the_job_which_can_be_retried(api, app, shop, monkeypatch):
    job = import_csv(api, shop.admin_key, HEADER + rows(5))
    (chunk,) = take_messages(JOBS_QUEUE, shop.id)
    original = replace_worker(monkeypatch, "import", failing("storage down"))
    assert len(deliver(app, "process_job_chunks", JOBS_QUEUE, [chunk])) == 1  # reported as a batch item failure
    assert deliver(app, "fail_dead_job_chunks", JOBS_DEAD_LETTER_QUEUE, [chunk]) == []
    failed = api.get(f"/jobs/{job['id']}", key=shop.admin_key).json
    assert failed["status"] == "failed" and "chunk 0" in failed["detail"]["failure"]
    replace_worker(monkeypatch, "import", original)
    retried = api.post(f"/jobs/{job['id']}/retry", key=shop.admin_key)
    assert retried.status == 200 and retried.json["status"] == "running"
    drain(app)
    done = api.get(f"/jobs/{job['id']}", key=shop.admin_key).json
    assert done["status"] == "succeeded" and done["counts"]["created"] == 5
    assert api.post(f"/jobs/{job['id']}/retry", key=shop.admin_key).status == 409


def test_jobs_are_per_tenant(api, app, shop, other_tenant):
    job = import_and_wait(api, app, shop.admin_key, HEADER + rows(2))
    assert api.get(f"/jobs/{job['id']}", key=other_tenant.admin_key).status == 404
    assert api.get(f"/jobs/{job['id']}/errors", key=other_tenant.admin_key).status == 404
    assert api.post(f"/jobs/{job['id']}/retry", key=other_tenant.admin_key).status == 404
    assert (
        api.post("/contacts/import", key=shop.viewer_key, body=HEADER, headers={"content-type": "text/csv"}).status
        == 403
    )
    assert api.get(f"/jobs/{job['id']}", key=shop.viewer_key).status == 200
    assert api.post(f"/jobs/{job['id']}/retry", key=shop.viewer_key).status == 403


def test_in_a_batch_only_the_failing_chunk_is_retried(api, app, shop, monkeypatch):
    healthy = import_csv(api, shop.admin_key, HEADER + rows(3))
    broken = import_csv(api, shop.admin_key, HEADER + rows(3, start=100))
    chunks = take_messages(JOBS_QUEUE, shop.id)

    def flaky(ctx, job_id, payload):
        if job_id == broken["id"]:
            raise RuntimeError("this chunk's storage is down")
        return original(ctx, job_id, payload)

    original = replace_worker(monkeypatch, "import", flaky)
    event = sqs_event(chunks, JOBS_QUEUE)
    failures = app.handler_map["process_job_chunks"](event, None)["batchItemFailures"]
    failed_bodies = [r["body"] for r in event["Records"] if r["messageId"] in {f["itemIdentifier"] for f in failures}]
    assert [json.loads(body)["job_id"] for body in failed_bodies] == [broken["id"]]
    assert api.get(f"/jobs/{healthy['id']}", key=shop.admin_key).json["status"] == "succeeded"
    assert api.get(f"/jobs/{broken['id']}", key=shop.admin_key).json["status"] == "running"


def test_a_row_cannot_take_the_email_of_a_contact_with_another_external_id(api, app, shop):
    api.post("/contacts", key=shop.admin_key, json={"external_id": "p-1", "email": "ana@example.com"})
    api.post("/contacts", key=shop.admin_key, json={"email": "bo@example.com"})
    job = import_and_wait(api, app, shop.admin_key, "external_id,email\np-2,ana@example.com\np-3,bo@example.com\n")
    assert [(e["line"], e["field"]) for e in job["errors"]] == [(2, "email")]
    assert job["counts"]["updated"] == 1  # bo@ had no external_id: the row gives it p-3
    assert api.get("/contacts/p-3", key=shop.admin_key).json["email"] == "bo@example.com"
