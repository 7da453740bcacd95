"""The segment API: lifecycle, bad input, roles, feature flag, tenant isolation, evaluation jobs."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.clock import to_rfc3339
from chalicelib.http.api import REGISTRY
from chalicelib.resources import CONTACT_CHANGES_QUEUE, JOBS_DEAD_LETTER_QUEUE, JOBS_QUEUE, MEMBERSHIP_EVENTS_QUEUE
from chalicelib.services import dependents
from tests.support.jobs import failing, replace_worker
from tests.support.population import import_and_wait
from tests.support.queues import deliver, drain, take_messages

PEOPLE = """external_id,email,first_name,tags,attributes.city,attributes.lifetime_value
p-1,ann@example.com,Ann,vip;family,Toronto,120
p-2,bo@example.com,=HYPERLINK("x"),vip,Toronto,15
p-3,chen@example.com,Chen,family,Montreal,300
p-4,dara@example.com,Dara,,Toronto,
p-5,eli@example.com,Eli,local,Paris,80
"""


def ago(days: float) -> str:
    return to_rfc3339(datetime.now(UTC) - timedelta(days=days))


@pytest.fixture
def shop(api, app, tenant):
    for name in ("vip", "family", "local", "unused"):
        assert api.post("/tags", key=tenant.admin_key, json={"name": name}).status == 201
    assert import_and_wait(api, app, tenant.admin_key, PEOPLE)["status"] == "succeeded"
    events = [
        {"external_id": "p-1", "type": "purchase", "at": ago(3), "amount": 70, "properties": {"discounted": True}},
        {"external_id": "p-1", "type": "purchase", "at": ago(5), "amount": 50, "properties": {"discounted": True}},
        {"external_id": "p-3", "type": "purchase", "at": ago(90), "amount": 300, "properties": {"discounted": False}},
        {"external_id": "p-4", "type": "purchase", "at": ago(20), "amount": 10, "properties": {"discounted": True}},
    ]
    assert api.post("/events", key=tenant.admin_key, json={"events": events}).status in (200, 201)
    drain(app)
    return tenant


def create(api, tenant, criteria, name="Segment", **extra):
    return api.post("/segments", key=tenant.admin_key, json={"name": name, "criteria": criteria, **extra})


def ready(api, app, tenant, criteria, name="Segment") -> dict:
    reply = create(api, tenant, criteria, name)
    assert reply.status == 201, reply.text
    drain(app)
    segment = api.get(f"/segments/{reply.json['id']}", key=tenant.viewer_key).json
    assert segment["status"] == "ready", segment
    return segment


def member_ids(api, tenant, segment_id) -> list[str]:
    found, cursor = [], None
    while True:
        page = api.get(
            f"/segments/{segment_id}/members?limit=2" + (f"&cursor={cursor}" if cursor else ""), key=tenant.viewer_key
        ).json
        found += [c["external_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return sorted(found)


def test_segment_lifecycle_create_evaluate_rename_refine_and_history(api, app, shop):
    created = create(api, shop, {"tag": "VIP"}, "Partners", description="Top tier")
    assert created.status == 201
    assert created.json["status"] == "evaluating" and created.json["member_count"] is None
    assert created.json["criteria"] == {"tag": "vip"} and created.json["version"] == 1
    job = api.get(f"/jobs/{created.json['job_id']}", key=shop.viewer_key).json
    assert job["kind"] == "segment_evaluate" and job["detail"]["cause"] == "created"
    assert job["detail"]["plan"] == "index" and job["progress"]["chunks_total"] == 1  # tags only: the tag index
    assert api.get(f"/segments/{created.json['id']}/members", key=shop.viewer_key).status == 409  # not evaluated yet
    drain(app)
    segment_id = created.json["id"]
    segment = api.get(f"/segments/{segment_id}", key=shop.viewer_key).json
    assert (segment["status"], segment["member_count"], segment["evaluated_version"]) == ("ready", 2, 1)
    finished = api.get(f"/jobs/{created.json['job_id']}", key=shop.viewer_key).json
    assert finished["status"] == "succeeded" and finished["counts"] == {"contacts": 0, "members": 2}  # no contact read
    assert member_ids(api, shop, segment_id) == ["p-1", "p-2"]

    renamed = api.patch(f"/segments/{segment_id}", key=shop.admin_key, json={"name": "VIP partners"}).json
    assert renamed["version"] == 2 and renamed["status"] == "ready" and renamed["job_id"] == segment["job_id"]
    same = api.patch(f"/segments/{segment_id}", key=shop.admin_key, json={"name": "VIP partners"}).json
    assert same["version"] == 2  # nothing changed, no new version

    refined = api.patch(
        f"/segments/{segment_id}",
        key=shop.admin_key,
        json={"criteria": {"all": [{"tag": "vip"}, {"attr": "lifetime_value", "op": "gte", "value": 100}]}},
    ).json
    assert refined["version"] == 3 and refined["status"] == "evaluating" and refined["member_count"] == 2
    drain(app)
    assert api.get(f"/segments/{segment_id}", key=shop.viewer_key).json["member_count"] == 1
    assert member_ids(api, shop, segment_id) == ["p-1"]
    history = api.get(f"/segments/{segment_id}/versions?limit=2", key=shop.viewer_key).json
    assert [v["version"] for v in history["items"]] == [3, 2]
    older = api.get(f"/segments/{segment_id}/versions?cursor={history['next_cursor']}", key=shop.viewer_key).json
    assert older["items"] == [
        {
            "version": 1,
            "name": "Partners",
            "description": "Top tier",
            "criteria": {"tag": "vip"},
            "saved_at": older["items"][0]["saved_at"],
        }
    ]
    listed = api.get("/segments?limit=1", key=shop.viewer_key).json
    assert len(listed["items"]) == 1 and listed["next_cursor"]


def test_the_bad_inputs_of_the_issue_store_nothing(api, app, shop):
    for i in range(11):
        api.post("/tags", key=shop.admin_key, json={"name": f"t{i}"})
    good = ready(api, app, shop, {"tag": "vip"}, "Good")
    cases = [
        ({"any": [{"tag": f"t{i}"} for i in range(11)]}, 422, "limit_exceeded", "criteria"),
        ({"any": [{"tag": "vip"}, {"tag": "nope"}]}, 422, "unknown_tags", "criteria.any[1].tag"),
        ({"attr": "lifetime_value", "op": "gt", "value": "abc"}, 422, "validation_error", "criteria.value"),
        ({"event": "purchase", "within": "2 months"}, 422, "validation_error", "criteria.within"),
        (
            {"event": "purchase", "agg": "median", "field": "amount", "op": "gt", "value": 1},
            422,
            "validation_error",
            "criteria.agg",
        ),
        ({"all": []}, 422, "validation_error", "criteria.all"),
        ({"any": [{"tag": "vip"}] * 200}, 422, "limit_exceeded", "criteria.any[99]"),
        ("vip", 422, "validation_error", "criteria"),
        ({"segment": good["id"] + "x"}, 422, "validation_error", "criteria.segment"),
    ]
    for criteria, status, code, field in cases:
        reply = create(api, shop, criteria)
        assert (reply.status, reply.error_code, reply.error_field) == (status, code, field), (criteria, reply.text)
    unknown = create(api, shop, {"any": [{"tag": "ghost"}, {"tag": "zombie"}]})
    assert unknown.json["error"]["details"]["tags"] == ["ghost", "zombie"]
    assert api.get("/tags/ghost", key=shop.admin_key).status == 404  # a segment never creates tags
    itself = api.patch(f"/segments/{good['id']}", key=shop.admin_key, json={"criteria": {"segment": good["id"]}})
    assert itself.status == 422 and itself.error_field == "criteria.segment"
    for body, field in [
        ({}, "body"),
        ({"name": " "}, "name"),
        ({"colour": "red"}, "colour"),
        ({"criteria": []}, "criteria"),
    ]:
        reply = api.patch(f"/segments/{good['id']}", key=shop.admin_key, json=body)
        assert reply.status == 422 and reply.error_field == field, (body, reply.text)
    for body in [{"criteria": {"tag": "vip"}}, {"name": "x" * 201, "criteria": {"tag": "vip"}}, []]:
        assert api.post("/segments", key=shop.admin_key, json=body).status == 422
    malformed = api.post("/segments", key=shop.admin_key, body="{", headers={"content-type": "application/json"})
    assert malformed.status == 400
    listed = api.get("/segments", key=shop.viewer_key).json["items"]
    assert [s["id"] for s in listed] == [good["id"]]
    assert api.get(f"/segments/{good['id']}", key=shop.viewer_key).json["version"] == 1


def test_a_cycle_through_other_segments_is_refused(api, app, shop):
    a = ready(api, app, shop, {"tag": "vip"}, "A")
    b = ready(api, app, shop, {"segment": a["id"]}, "B")
    c = ready(api, app, shop, {"any": [{"segment": b["id"]}, {"tag": "local"}]}, "C")
    reply = api.patch(f"/segments/{a['id']}", key=shop.admin_key, json={"criteria": {"not": {"segment": c["id"]}}})
    assert reply.status == 422 and reply.error_field == "criteria.not.segment"
    assert reply.json["error"]["details"]["cycle"] == [a["id"], c["id"], b["id"], a["id"]]
    assert api.get(f"/segments/{a['id']}", key=shop.viewer_key).json["criteria"] == {"tag": "vip"}


def test_roles_and_the_feature_flag_guard_every_segment_route(api, app, shop, new_tenant):
    segment = ready(api, app, shop, {"tag": "vip"})
    segment_routes = [op for op in REGISTRY if op.feature == "segments" and op.access.value != "portal"]
    assert {op.path for op in segment_routes} >= {"/segments", "/segments/{segment_id}", "/overview"}
    off = new_tenant("No segments", segments=False)
    for op in segment_routes:
        path = op.path.replace("{segment_id}", segment["id"])
        reply = api.request(op.method, path, key=off.admin_key, json={"criteria": {"tag": "vip"}, "name": "x"})
        assert reply.status == 403 and reply.error_code == "feature_disabled", (op.method, path)
        if op.access.value == "admin":
            viewer = api.request(op.method, path, key=shop.viewer_key, json={"criteria": {"tag": "vip"}, "name": "x"})
            assert viewer.status == 403 and viewer.error_code == "forbidden", (op.method, path)
        assert api.request(op.method, path).status == 401
    assert api.post("/segments/preview", key=shop.viewer_key, json={"criteria": {"tag": "vip"}}).status == 200


def test_tenant_b_cannot_read_or_change_tenant_a_segments(api, app, shop, other_tenant):
    segment = ready(api, app, shop, {"tag": "vip"})
    other = other_tenant.admin_key
    sid = segment["id"]
    for method, path in [
        ("GET", f"/segments/{sid}"),
        ("PATCH", f"/segments/{sid}"),
        ("DELETE", f"/segments/{sid}?confirm=true"),
        ("GET", f"/segments/{sid}/versions"),
        ("GET", f"/segments/{sid}/members"),
        ("GET", f"/segments/{sid}/members.csv"),
        ("POST", f"/segments/{sid}/evaluate"),
        ("GET", f"/segments/{sid}/dependents"),
        ("GET", f"/segments/{sid}/history"),
    ]:
        reply = api.request(method, path, key=other, json={"name": "stolen"})
        assert reply.status == 404, (method, path, reply.text)
    assert api.get("/segments", key=other).json["items"] == []
    overlap = api.get(f"/segments/overlap?ids={sid},{sid}x", key=other)
    assert overlap.status == 422 and overlap.error_field == "ids"
    assert create(api, other_tenant, {"segment": sid}).error_field == "criteria.segment"
    assert create(api, other_tenant, {"tag": "vip"}).error_code == "unknown_tags"  # A's tags are not B's
    api.post("/tags", key=other, json={"name": "vip"})
    assert api.post("/segments/preview", key=other, json={"criteria": {"tag": "vip"}}).json["count"] == 0
    assert api.get("/overview?facets=tags", key=other).json["total"] == 0
    after = api.get(f"/segments/{sid}", key=shop.admin_key).json
    assert after["name"] == "Segment" and after["version"] == 1


def test_preview_counts_samples_and_follows_windows(api, app, shop):
    def preview(criteria, **extra):
        reply = api.post("/segments/preview", key=shop.viewer_key, json={"criteria": criteria, **extra})
        assert reply.status == 200, reply.text
        return reply.json

    recent = preview({"event": "purchase", "within": "60d"})
    assert recent["count"] == 2 and recent["contacts_evaluated"] == 5
    assert sorted(c["external_id"] for c in recent["sample"]) == ["p-1", "p-4"]
    assert (
        preview({"event": "purchase", "within": "7d", "agg": "sum", "field": "amount", "op": "gt", "value": 100})[
            "count"
        ]
        == 1
    )
    everyone = preview({"not": {"tag": "unused"}}, sample_size=3)
    assert everyone["count"] == 5 and len(everyone["sample"]) == 3
    assert preview({"not": {"tag": "unused"}}, sample_size=3)["sample"] == everyone["sample"]  # stable
    assert preview({"tag": "vip"}, sample_size=0)["sample"] == []
    bad = api.post("/segments/preview", key=shop.viewer_key, json={"criteria": {"tag": "vip"}, "sample_size": 51})
    assert bad.status == 422 and bad.error_field == "sample_size"


def test_members_csv_pages_escapes_formulas_and_lists_attributes(api, app, shop):
    segment = ready(api, app, shop, {"attr": "city", "op": "eq", "value": "toronto"})
    first = api.get(f"/segments/{segment['id']}/members.csv?limit=2", key=shop.viewer_key)
    assert first.status == 200 and first.headers["content-type"].startswith("text/csv")
    cursor = first.headers["x-next-cursor"]
    assert f"limit=2&cursor={cursor}" in first.headers["link"] and 'rel="next"' in first.headers["link"]
    rest = api.get(f"/segments/{segment['id']}/members.csv?limit=2&cursor={cursor}", key=shop.viewer_key)
    assert "x-next-cursor" not in rest.headers
    rows = list(csv.DictReader(io.StringIO(first.text))) + list(csv.DictReader(io.StringIO(rest.text)))
    assert sorted(r["external_id"] for r in rows) == ["p-1", "p-2", "p-4"]
    by_id = {r["external_id"]: r for r in rows}
    assert by_id["p-2"]["first_name"] == '\'=HYPERLINK("x")'
    assert by_id["p-1"]["tags"] == "family;vip" and by_id["p-1"]["attributes.lifetime_value"] == "120"
    assert by_id["p-4"]["attributes.lifetime_value"] == ""
    assert api.get(f"/segments/{segment['id']}/members.csv?limit=0", key=shop.viewer_key).error_field == "limit"


def test_every_evaluation_message_twice_gives_the_same_membership(api, app, shop):
    created = create(api, shop, {"any": [{"tag": "family"}, {"attr": "city", "op": "eq", "value": "Paris"}]})
    chunks = take_messages(JOBS_QUEUE, shop.id)
    assert len(chunks) == 16
    assert deliver(app, "process_job_chunks", JOBS_QUEUE, chunks, times=2) == []
    segment = api.get(f"/segments/{created.json['id']}", key=shop.viewer_key).json
    assert segment["status"] == "ready" and segment["member_count"] == 3
    assert member_ids(api, shop, segment["id"]) == ["p-1", "p-3", "p-5"]
    job = api.get(f"/jobs/{segment['job_id']}", key=shop.viewer_key).json
    assert job["counts"] == {"contacts": 5, "members": 3} and job["progress"]["chunks_done"] == 16


def test_a_newer_evaluation_wins_whatever_order_the_shards_finish_in(api, app, shop):
    created = create(api, shop, {"tag": "vip"})
    first_job = take_messages(JOBS_QUEUE, shop.id)
    api.patch(f"/segments/{created.json['id']}", key=shop.admin_key, json={"criteria": {"tag": "family"}})
    second_job = take_messages(JOBS_QUEUE, shop.id)
    assert deliver(app, "process_job_chunks", JOBS_QUEUE, second_job) == []
    assert deliver(app, "process_job_chunks", JOBS_QUEUE, first_job) == []  # late, superseded
    segment = api.get(f"/segments/{created.json['id']}", key=shop.viewer_key).json
    assert segment["member_count"] == 2 and segment["evaluated_version"] == 2
    assert member_ids(api, shop, segment["id"]) == ["p-1", "p-3"]


def test_a_failed_evaluation_keeps_serving_the_previous_membership(api, app, shop, monkeypatch):
    segment = ready(api, app, shop, {"tag": "vip"})
    job = api.post(f"/segments/{segment['id']}/evaluate", key=shop.admin_key)
    assert job.status == 202 and job.json["kind"] == "segment_evaluate"
    chunks = take_messages(JOBS_QUEUE, shop.id)
    replace_worker(monkeypatch, "segment_evaluate", failing("boom"))
    assert len(deliver(app, "process_job_chunks", JOBS_QUEUE, chunks[:1])) == 1
    assert deliver(app, "fail_dead_job_chunks", JOBS_DEAD_LETTER_QUEUE, chunks[:1], times=2) == []
    failed = api.get(f"/segments/{segment['id']}", key=shop.viewer_key).json
    assert failed["status"] == "failed" and "failed" in failed["status_reason"] and failed["member_count"] == 2
    assert member_ids(api, shop, segment["id"]) == ["p-1", "p-2"]
    assert api.get(f"/jobs/{job.json['id']}", key=shop.viewer_key).json["status"] == "failed"


def test_overlap_of_segments(api, app, shop):
    vip = ready(api, app, shop, {"tag": "vip"}, "VIP")
    toronto = ready(api, app, shop, {"attr": "city", "op": "eq", "value": "Toronto"}, "Toronto")
    family = ready(api, app, shop, {"tag": "family"}, "Family")
    reply = api.get(f"/segments/overlap?ids={vip['id']},{toronto['id']},{family['id']}", key=shop.viewer_key)
    assert reply.status == 200
    pairs = {(p["a"], p["b"]): p for p in reply.json["pairs"]}
    assert len(pairs) == 3
    assert pairs[(vip["id"], toronto["id"])] | {} == {
        "a": vip["id"],
        "b": toronto["id"],
        "both": 2,
        "only_a": 0,
        "only_b": 1,
        "jaccard": round(2 / 3, 6),
    }
    assert pairs[(toronto["id"], family["id"])]["both"] == 1
    assert [s["member_count"] for s in reply.json["segments"]] == [2, 3, 2]
    for ids in [vip["id"], f"{vip['id']},{vip['id']}", ",".join([vip["id"]] * 11), ""]:
        bad = api.get(f"/segments/overlap?ids={ids}", key=shop.viewer_key)
        assert bad.status == 422 and bad.error_field == "ids"
    fresh = create(api, shop, {"tag": "local"}).json
    pending = api.get(f"/segments/overlap?ids={vip['id']},{fresh['id']}", key=shop.viewer_key)
    assert pending.status == 409


def test_overview_counts_values_with_the_criteria_that_selects_them(api, app, shop):
    reply = api.get("/overview?facets=tags,attributes.city,attributes.lifetime_value,group&top=2", key=shop.viewer_key)
    assert reply.status == 200
    body = reply.json
    assert body["total"] == 5
    cities = body["facets"]["attributes.city"]
    assert cities["values"][0] == {
        "value": "Toronto",
        "count": 3,
        "criteria": {"attr": "city", "op": "eq", "value": "Toronto"},
    }
    assert cities["other"] == 1 and cities["missing"] == 0 and cities["distinct"] == 3
    tags = body["facets"]["tags"]
    assert [(v["value"], v["count"]) for v in tags["values"]] == [("family", 2), ("vip", 2)]
    assert tags["missing"] == 1 and tags["other"] == 1
    assert body["facets"]["attributes.lifetime_value"]["missing"] == 1
    for value in cities["values"] + tags["values"]:  # clicking a value previews exactly that count
        preview = api.post("/segments/preview", key=shop.viewer_key, json={"criteria": value["criteria"]}).json
        assert preview["count"] == value["count"]
    for facets in ["attributes.nope", "colour", "attributes.signup_at", ",".join(["tags"] * 1) + ",x"]:
        bad = api.get(f"/overview?facets={facets}", key=shop.viewer_key)
        assert bad.status == 422 and bad.error_field == "facets", facets
    assert api.get("/overview?top=0", key=shop.viewer_key).error_field == "top"


def test_tags_show_their_segments_and_deleting_a_tag_invalidates_them(api, app, shop):
    vip = ready(api, app, shop, {"all": [{"tag": "vip"}, {"tag": "family"}]}, "VIP family")
    mixer = ready(api, app, shop, {"any": [{"segment": vip["id"]}, {"tag": "local"}]}, "Mixer")
    assert api.get("/tags/family", key=shop.viewer_key).json["used_by"] == [
        {"type": "segment", "id": vip["id"], "name": "VIP family"}
    ]
    refused = api.delete("/tags/family", key=shop.admin_key)
    assert refused.status == 409 and refused.json["error"]["details"]["dependents"][0]["id"] == vip["id"]
    assert api.delete("/tags/family?confirm=true", key=shop.admin_key).status in (202, 204)
    drain(app)
    broken = api.get(f"/segments/{vip['id']}", key=shop.viewer_key).json
    assert broken["status"] == "invalid" and "tag family was deleted" in broken["status_reason"]
    assert broken["member_count"] == 1  # the last membership is still served
    downstream = api.get(f"/segments/{mixer['id']}", key=shop.viewer_key).json
    assert downstream["status"] == "invalid" and vip["id"] in downstream["status_reason"]
    refused = api.post(f"/segments/{vip['id']}/evaluate", key=shop.admin_key)
    assert refused.status == 409
    fixed = api.patch(f"/segments/{vip['id']}", key=shop.admin_key, json={"criteria": {"tag": "vip"}})
    assert fixed.status == 200 and fixed.json["status"] == "evaluating"
    drain(app)
    assert api.get(f"/segments/{vip['id']}", key=shop.viewer_key).json["member_count"] == 2
    revived = api.get(f"/segments/{mixer['id']}", key=shop.viewer_key).json
    assert revived["status"] == "ready" and revived["member_count"] == 3


def test_deleting_a_group_invalidates_the_segments_using_it(api, app, shop):
    group = api.post("/groups", key=shop.admin_key, json={"name": "Resellers"}).json
    segment = ready(api, app, shop, {"not": {"group": group["id"]}}, "Not resellers")
    assert segment["member_count"] == 5
    refused = api.delete(f"/groups/{group['id']}", key=shop.admin_key)
    assert refused.status == 409 and refused.json["error"]["details"]["dependents"][0]["id"] == segment["id"]
    assert api.delete(f"/groups/{group['id']}?confirm=true", key=shop.admin_key).status in (202, 204)
    after = api.get(f"/segments/{segment['id']}", key=shop.viewer_key).json
    assert after["status"] == "invalid" and "Resellers" in after["status_reason"]


def test_deleting_a_segment_always_asks_lists_dependents_and_keeps_tags(api, app, shop):
    base = ready(api, app, shop, {"tag": "vip"}, "Base")
    middle = ready(api, app, shop, {"all": [{"segment": base["id"]}, {"tag": "family"}]}, "Middle")
    top = ready(api, app, shop, {"not": {"segment": middle["id"]}}, "Top")
    lonely = ready(api, app, shop, {"tag": "local"}, "Lonely")
    refused = api.delete(f"/segments/{lonely['id']}", key=shop.admin_key)
    assert refused.status == 409 and refused.json["error"]["details"]["dependents"] == []
    listed = api.get(f"/segments/{base['id']}/dependents", key=shop.viewer_key).json["items"]
    assert listed == [{"type": "segment", "id": middle["id"], "name": "Middle"}]
    refused = api.delete(f"/segments/{base['id']}", key=shop.admin_key)
    assert refused.status == 409 and refused.error_code == "confirmation_required"
    assert refused.json["error"]["details"]["dependents"] == listed
    assert api.delete(f"/segments/{base['id']}?confirm=true", key=shop.admin_key).status == 204
    assert api.get(f"/segments/{base['id']}", key=shop.viewer_key).status == 404
    assert api.get("/tags/vip", key=shop.viewer_key).json["contact_count"] == 2  # tags stay
    middle_now = api.get(f"/segments/{middle['id']}", key=shop.viewer_key).json
    assert middle_now["status"] == "invalid" and base["id"] in middle_now["status_reason"]
    assert middle_now["criteria"] == middle["criteria"]  # not silently changed
    top_now = api.get(f"/segments/{top['id']}", key=shop.viewer_key).json
    assert top_now["status"] == "invalid" and middle["id"] in top_now["status_reason"]
    assert api.get(f"/segments/{middle['id']}/members", key=shop.viewer_key).status == 200
    cannot_use = create(api, shop, {"segment": middle["id"]})
    assert cannot_use.status == 422 and "invalid" in cannot_use.json["error"]["message"]


def test_later_features_plug_into_segment_dependents(api, app, shop):
    segment = ready(api, app, shop, {"tag": "vip"})
    released = []

    def campaigns_targeting(ctx, segment_id):
        return [{"type": "campaign", "id": "cmp_x", "name": "Spring"}] if segment_id == segment["id"] else []

    dependents.register([("segment", campaigns_targeting, lambda ctx, key, reason: released.append((key, reason)))])
    try:
        listed = api.get(f"/segments/{segment['id']}/dependents", key=shop.viewer_key).json["items"]
        assert listed == [{"type": "campaign", "id": "cmp_x", "name": "Spring"}]
        assert api.delete(f"/segments/{segment['id']}?confirm=true", key=shop.admin_key).status == 204
        assert released and released[0][0] == segment["id"] and "was deleted" in released[0][1]
    finally:
        dependents._finders["segment"].remove(campaigns_targeting)
        dependents._releases["segment"].pop()


def test_the_size_history_counts_each_move_once_and_follows_evaluations(api, app, shop):
    segment = ready(api, app, shop, {"tag": "vip"}, "VIPs")
    today = datetime.now(UTC).date().isoformat()
    history = api.get(f"/segments/{segment['id']}/history", key=shop.viewer_key)
    assert history.status == 200
    assert history.json["items"] == [{"date": today, "members": 2, "entered": 0, "exited": 0}]
    for external_id in ("p-3", "p-4"):
        assert api.post(f"/contacts/{external_id}/tags", key=shop.admin_key, json={"add": ["vip"]}).status == 200
    assert api.post("/contacts/p-1/tags", key=shop.admin_key, json={"remove": ["vip"]}).status == 200
    drain(app, CONTACT_CHANGES_QUEUE)
    moves = take_messages(MEMBERSHIP_EVENTS_QUEUE, shop.id)
    assert len(moves) == 3
    assert deliver(app, "apply_membership_events", MEMBERSHIP_EVENTS_QUEUE, moves, times=2) == []  # twice, shuffled
    (point,) = api.get(f"/segments/{segment['id']}/history?days=1", key=shop.viewer_key).json["items"]
    members = api.get(f"/segments/{segment['id']}", key=shop.viewer_key).json["member_count"]
    assert point == {"date": today, "members": members, "entered": 2, "exited": 1} and members == 3
    assert api.get(f"/segments/{segment['id']}/history?days=401", key=shop.viewer_key).error_field == "days"
