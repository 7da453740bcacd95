import pytest

from chalicelib.resources import JOBS_QUEUE
from chalicelib.services import dependents
from tests.support.population import many_contacts
from tests.support.queues import drain, take_changes


def tag(api, tenant, name, **extra):
    return api.post("/tags", key=tenant.admin_key, json={"name": name, **extra})


def test_tags_are_created_case_insensitively_described_and_listed(api, tenant):
    created = tag(api, tenant, "  VIP ", description="Top partners")
    assert created.status == 201
    assert created.json == {**created.json, "name": "vip", "description": "Top partners", "contact_count": 0}
    again = tag(api, tenant, "vip")
    assert again.status == 409 and again.error_field == "name"
    tag(api, tenant, "family")
    listed = api.get("/tags", key=tenant.viewer_key).json
    assert [t["name"] for t in listed["items"]] == ["family", "vip"]
    patched = api.patch("/tags/VIP", key=tenant.admin_key, json={"description": "Best partners"}).json
    assert patched["description"] == "Best partners"
    assert api.get("/tags/vip", key=tenant.viewer_key).json["used_by"] == []


@pytest.mark.parametrize("name", ["", "two words", "-dash-first", "x" * 65, "naïve"])
def test_bad_tag_names(api, tenant, name):
    reply = tag(api, tenant, name)
    assert reply.status == 422 and reply.error_field == "name"


def test_bulk_tagging_inline_counts_and_untags(api, app, tenant):
    tag(api, tenant, "vip")
    ids = many_contacts(api, app, tenant.admin_key, 30)
    take_changes()
    reply = api.post("/tags/vip/contacts", key=tenant.admin_key, json={"contact_ids": ids[:20] + ids[:5]})
    assert reply.status == 200
    assert reply.json == {"tag": "vip", "action": "add", "requested": 20, "changed": 20, "unchanged": 0, "missing": 0}
    assert api.get("/tags/vip", key=tenant.admin_key).json["contact_count"] == 20
    again = api.post("/tags/vip/contacts", key=tenant.admin_key, json={"contact_ids": ids[:25]}).json
    assert (again["changed"], again["unchanged"]) == (5, 20)
    messages = take_changes(tenant.id)
    assert len(messages) == 25 and len({m["contact_id"] for m in messages}) == 25
    removed = api.delete("/tags/vip/contacts", key=tenant.admin_key, json={"contact_ids": ids[:10]}).json
    assert removed["changed"] == 10
    assert api.get("/tags/vip", key=tenant.admin_key).json["contact_count"] == 15


def test_bulk_tagging_refuses_unknown_or_foreign_ids_and_changes_nothing(api, app, tenant, other_tenant):
    tag(api, tenant, "vip")
    ours = many_contacts(api, app, tenant.admin_key, 3)
    theirs = many_contacts(api, app, other_tenant.admin_key, 2, prefix="b")
    reply = api.post("/tags/vip/contacts", key=tenant.admin_key, json={"contact_ids": ours + theirs + ["nonsense"]})
    assert reply.status == 422 and reply.error_field == "contact_ids"
    assert api.get("/tags/vip", key=tenant.admin_key).json["contact_count"] == 0
    too_many = api.post("/tags/vip/contacts", key=tenant.admin_key, json={"contact_ids": ["ctc_0000001"] * 10_001})
    assert too_many.status == 422 and too_many.error_code == "limit_exceeded"
    unknown = api.post("/tags/gold/contacts", key=tenant.admin_key, json={"contact_ids": ours})
    assert unknown.status == 422 and unknown.error_code == "unknown_tags"


@pytest.mark.slow
def test_tag_added_in_bulk_to_10000_contacts_is_on_all_of_them(api, app, tenant):
    tag(api, tenant, "partner")
    ids = many_contacts(api, app, tenant.admin_key, 10_000)
    assert len(ids) == 10_000
    take_changes()
    reply = api.post("/tags/partner/contacts", key=tenant.admin_key, json={"contact_ids": ids})
    assert reply.status == 202
    job_id = reply.json["id"]
    drain(app, JOBS_QUEUE)  # the contact changes stay queued, to be counted
    job = api.get(f"/jobs/{job_id}", key=tenant.admin_key).json
    assert job["status"] == "succeeded" and job["counts"]["updated"] == 10_000
    assert job["progress"] == {**job["progress"], "processed": 10_000, "percent": 100.0}
    assert api.get("/tags/partner", key=tenant.admin_key).json["contact_count"] == 10_000
    tagged, cursor = set(), None
    while True:
        page = api.get(
            "/contacts?tag=partner&limit=500" + (f"&cursor={cursor}" if cursor else ""), key=tenant.admin_key
        )
        tagged |= {c["id"] for c in page.json["items"] if "partner" in c["tags"]}
        cursor = page.json["next_cursor"]
        if not cursor:
            break
    assert tagged == set(ids)
    assert len(take_changes(tenant.id)) == 10_000


def test_deleting_a_tag_in_use_needs_confirmation_then_untags_everyone(api, app, tenant):
    tag(api, tenant, "vip")
    tag(api, tenant, "unused")
    assert api.delete("/tags/unused", key=tenant.admin_key).status == 204
    assert api.get("/tags/unused", key=tenant.admin_key).status == 404
    ids = many_contacts(api, app, tenant.admin_key, 4)
    api.post("/tags/vip/contacts", key=tenant.admin_key, json={"contact_ids": ids})
    refused = api.delete("/tags/vip", key=tenant.admin_key)
    assert refused.status == 409 and refused.error_code == "confirmation_required"
    assert refused.json["error"]["details"]["contact_count"] == 4
    confirmed = api.delete("/tags/vip?confirm=true", key=tenant.admin_key)
    assert confirmed.status == 202
    assert api.post("/contacts", key=tenant.admin_key, json={"email": "z@example.com", "tags": ["vip"]}).status == 422
    drain(app)
    assert api.get(f"/jobs/{confirmed.json['id']}", key=tenant.admin_key).json["status"] == "succeeded"
    assert api.get("/tags/vip", key=tenant.admin_key).status == 404
    assert all("vip" not in api.get(f"/contacts/{i}", key=tenant.admin_key).json["tags"] for i in ids)
    assert tag(api, tenant, "vip").json["contact_count"] == 0


def test_tag_dependents_are_listed_before_deletion(api, tenant):
    tag(api, tenant, "local")

    def segments_using(ctx, name):
        found = (ctx.tenant_id, name) == (tenant.id, "local")
        return [{"type": "segment", "id": "seg_x", "name": "Locals"}] if found else []

    dependents.register([("tag", segments_using, lambda ctx, name, reason: None)])
    try:
        assert api.get("/tags/local", key=tenant.admin_key).json["used_by"] == [
            {"type": "segment", "id": "seg_x", "name": "Locals"}
        ]
        refused = api.delete("/tags/local", key=tenant.admin_key)
        assert refused.status == 409 and refused.json["error"]["details"]["dependents"][0]["id"] == "seg_x"
    finally:
        dependents._finders["tag"].remove(segments_using)
        dependents._releases["tag"].pop()


def test_tags_are_per_tenant_and_viewers_only_read(api, tenant, other_tenant):
    tag(api, tenant, "vip")
    assert api.get("/tags/vip", key=other_tenant.admin_key).status == 404
    assert api.get("/tags", key=other_tenant.admin_key).json["items"] == []
    assert api.delete("/tags/vip?confirm=true", key=other_tenant.admin_key).status == 404
    assert api.patch("/tags/vip", key=other_tenant.admin_key, json={"description": "x"}).status == 404
    assert tag(api, other_tenant, "vip").status == 201
    viewer = tenant.viewer_key
    assert api.post("/tags", key=viewer, json={"name": "x"}).status == 403
    assert api.patch("/tags/vip", key=viewer, json={"description": "x"}).status == 403
    assert api.delete("/tags/vip", key=viewer).status == 403
    assert api.post("/tags/vip/contacts", key=viewer, json={"contact_ids": ["ctc_0000001"]}).status == 403
    assert api.delete("/tags/vip/contacts", key=viewer, json={"contact_ids": ["ctc_0000001"]}).status == 403
    assert api.get("/tags/vip", key=viewer).status == 200
