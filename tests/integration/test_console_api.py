"""What the console serves and the routes it added: the page and its files (with their security headers),
GET /me, GET /jobs, GET /contacts?q=, GET /contacts/{id}/segments and the local Mailbox — roles, validation
and tenant isolation for each."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chalicelib import composition
from chalicelib.services import mailbox as mailbox_service
from infra.local import mailbox as local_mailbox
from tests.integration.test_campaign_sending import make_segment
from tests.support.population import import_and_wait
from tests.support.queues import drain

PEOPLE = (
    "external_id,email,first_name,last_name,tags\n"
    "p-1,ana.lopez@example.com,Ana,Lopez,vip\n"
    "p-2,anabel@example.com,Anabel,Smith,\n"
    "p-3,bo@example.com,Bo,Anders,vip\n"
    "ana-ext,zed@example.com,Zed,Young,\n"
)


@pytest.fixture
def people(api, app, tenant):
    for tag in ("vip",):
        assert api.post("/tags", key=tenant.admin_key, json={"name": tag}).status == 201
    assert import_and_wait(api, app, tenant.admin_key, PEOPLE)["status"] == "succeeded"
    drain(app)
    return tenant


# --- the page and its files ----------------------------------------------------------------------------


def test_the_console_page_and_its_files_carry_a_strict_content_security_policy(api):
    page = api.get("/console")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert 'src="console/app.js"' in page.text  # relative: the console works under a stage prefix too
    head = api.request("HEAD", "/console/app.js")  # the body is dropped by the server, as for every GET route
    assert head.status == 200 and head.headers["content-security-policy"] == policy
    for name, kind in (
        ("app.js", "text/javascript"),
        ("console.css", "text/css"),
        ("criteria-model.js", "text/javascript"),
    ):
        reply = api.get(f"/console/{name}")
        assert reply.status == 200 and reply.headers["content-type"].startswith(kind), name
        assert reply.headers["content-security-policy"] == policy


@pytest.mark.parametrize("name", ["nothing.js", "..%2Fapp.py", ".hidden.js", "%2E%2E", "index.py", "app.js%00.css"])
def test_only_the_console_files_are_served(api, name):
    reply = api.get(f"/console/{name}")
    assert reply.status == 404 and reply.error_code == "not_found"


def test_the_first_load_is_under_200_kb(api):
    page = api.get("/console").text
    names = ["console.css", "app.js"]
    names += [
        line.split('"./')[1].split('"')[0]
        for line in api.get("/console/app.js").text.splitlines()
        if 'from "./' in line
    ]
    total = len(page.encode()) + sum(len(api.get(f"/console/{name}").text.encode()) for name in set(names))
    assert total < 200_000, total


# --- GET /me --------------------------------------------------------------------------------------------


def test_me_names_the_tenant_role_features_and_limits_of_the_key_in_use(api, tenant, other_tenant, new_tenant):
    admin = api.get("/me", key=tenant.admin_key).json
    assert admin["tenant"]["id"] == tenant.id and admin["key"]["role"] == "admin"
    assert admin["features"]["segments"] is True and admin["limits"]["tags_per_segment"] == 10
    assert admin["stage"] == "local"
    viewer = api.get("/me", key=tenant.viewer_key).json
    assert viewer["key"]["role"] == "viewer" and viewer["tenant"]["id"] == tenant.id
    assert api.get("/me", key=other_tenant.admin_key).json["tenant"]["id"] == other_tenant.id
    closed = new_tenant("No segments", segments=False)
    assert api.get("/me", key=closed.admin_key).json["features"]["segments"] is False  # answers while it is off
    assert api.get("/me").status == 401


# --- GET /jobs --------------------------------------------------------------------------------------------


def test_jobs_list_newest_first_by_kind_and_status_and_only_the_callers(api, app, people, other_tenant):
    make_segment(api, app, people, {"tag": "vip"}, "VIPs")
    listed = api.get("/jobs", key=people.viewer_key).json["items"]
    kinds = [job["kind"] for job in listed]
    assert "import" in kinds and "segment_evaluate" in kinds
    assert [job["id"] for job in listed] == sorted((job["id"] for job in listed), reverse=True)
    imports = api.get("/jobs?kind=import", key=people.admin_key).json["items"]
    assert [job["kind"] for job in imports] == ["import"] and imports[0]["counts"]["created"] == 4
    assert all(
        job["status"] == "succeeded" for job in api.get("/jobs?status=succeeded", key=people.admin_key).json["items"]
    )
    assert api.get("/jobs?status=failed&kind=import", key=people.admin_key).json["items"] == []
    assert api.get("/jobs", key=other_tenant.admin_key).json["items"] == []
    first = api.get("/jobs?limit=1", key=people.admin_key).json
    second = api.get(f"/jobs?limit=1&cursor={first['next_cursor']}", key=people.admin_key).json
    assert first["items"][0]["id"] != second["items"][0]["id"]
    foreign = api.get(f"/jobs?limit=1&cursor={first['next_cursor']}", key=other_tenant.admin_key)
    assert (foreign.status, foreign.error_field) == (422, "cursor")


@pytest.mark.parametrize(
    "query, field", [("kind=nope", "kind"), ("status=done", "status"), ("kind=", None), ("limit=0", "limit")]
)
def test_jobs_filters_are_checked(api, tenant, query, field):
    reply = api.get(f"/jobs?{query}", key=tenant.admin_key)
    if field is None:
        assert reply.status == 200  # an empty filter is no filter
    else:
        assert reply.status == 422 and reply.error_field == field


# --- GET /contacts?q= -----------------------------------------------------------------------------------


def _ids(reply) -> list[str]:
    assert reply.status == 200, reply.text
    return [contact["external_id"] for contact in reply.json["items"]]


def test_search_finds_contacts_by_the_start_of_email_name_or_external_id(api, people):
    key = people.viewer_key
    assert sorted(_ids(api.get("/contacts?q=ana", key=key))) == ["ana-ext", "p-1", "p-2"]
    assert sorted(_ids(api.get("/contacts?q=ANA", key=key))) == ["ana-ext", "p-1", "p-2"]  # case ignored
    assert _ids(api.get("/contacts?q=Ana%20Lo", key=key)) == ["p-1"]  # first name, then last name
    assert _ids(api.get("/contacts?q=anders", key=key)) == ["p-3"]
    assert _ids(api.get("/contacts?q=bo%40ex", key=key)) == ["p-3"]
    assert _ids(api.get("/contacts?q=ana&tag=vip", key=key)) == ["p-1"]
    assert _ids(api.get("/contacts?q=nobody", key=key)) == []


def test_search_pages_through_every_match_once(api, people):
    seen, cursor = [], None
    while True:
        reply = api.get("/contacts?q=a&limit=1" + (f"&cursor={cursor}" if cursor else ""), key=people.admin_key)
        seen += _ids(reply)
        cursor = reply.json["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(_ids(api.get("/contacts?q=a", key=people.admin_key)))
    assert len(seen) == len(set(seen)) == 4  # ana…, anabel…, Anders (last name), ana-ext


@pytest.mark.parametrize(
    "query, field", [("q=", "q"), ("q=%20%20", "q"), ("q=" + "x" * 201, "q"), ("q=a&tag=nope", "tag"),
                     ("q=a&group=grp_nope", "group")],
)  # fmt: skip
def test_search_refuses_what_it_cannot_search_naming_the_field(api, people, query, field):
    reply = api.get(f"/contacts?{query}", key=people.admin_key)
    assert reply.status == 422 and reply.error_field == field, reply.text


def test_search_never_finds_another_tenants_contacts(api, people, other_tenant):
    assert _ids(api.get("/contacts?q=ana", key=other_tenant.admin_key)) == []


# --- GET /contacts/{id}/segments -------------------------------------------------------------------------


def test_a_contacts_segments_are_its_stored_memberships_for_admins_only(api, app, people, other_tenant):
    vip = make_segment(api, app, people, {"tag": "vip"}, "VIPs")
    make_segment(api, app, people, {"attr": "first_name", "op": "eq", "value": "Zed"}, "Zeds")
    listed = api.get("/contacts/p-1/segments", key=people.admin_key)
    assert listed.status == 200 and [s["id"] for s in listed.json["items"]] == [vip]
    assert api.get("/contacts/p-2/segments", key=people.admin_key).json["items"] == []
    assert api.post("/contacts/p-2/tags", key=people.admin_key, json={"add": ["vip"]}).status == 200
    drain(app)  # real-time membership moves p-2 in
    assert [s["name"] for s in api.get("/contacts/p-2/segments", key=people.admin_key).json["items"]] == ["VIPs"]
    assert api.get("/contacts/p-1/segments", key=people.viewer_key).status == 403
    assert api.get("/contacts/p-1/segments", key=other_tenant.admin_key).status == 404
    contact_id = api.get("/contacts/p-1", key=people.admin_key).json["id"]
    assert api.get(f"/contacts/{contact_id}/segments", key=other_tenant.admin_key).status == 404


# --- the local Mailbox ------------------------------------------------------------------------------------


class InProcessMailbox:
    """The mailbox in-process moto fills (its SES wrap records every message), read without a server."""

    def newest(self, tenant_id, limit, before):
        return local_mailbox.newest(tenant_id, limit, before)

    def one(self, tenant_id, message_id):
        return local_mailbox.one(tenant_id, message_id)


def _send_test_mail(api, app, tenant, segment):
    campaign = api.post(
        "/campaigns",
        key=tenant.admin_key,
        json={
            "name": "Hello",
            "from": "news@example.com",
            "subject": "Hi {{ contact.first_name }}",
            "html": "<p>Hi <b>{{ contact.first_name }}</b></p>",
            "text": "Hi {{ contact.first_name }}",
            "segments": [segment],
        },
    ).json
    assert api.post(f"/campaigns/{campaign['id']}/send", key=tenant.admin_key).status == 200
    drain(app)


def test_the_mailbox_shows_each_tenant_only_its_own_mail_with_headers_and_bodies(
    api, app, people, new_tenant, monkeypatch
):
    monkeypatch.setattr(composition, "_MAILBOX", InProcessMailbox())
    _send_test_mail(api, app, people, make_segment(api, app, people, {"tag": "vip"}, "VIPs"))
    listed = api.get("/local/mail", key=people.viewer_key)
    assert listed.status == 200
    assert sorted(m["to"] for m in listed.json["items"]) == ["ana.lopez@example.com", "bo@example.com"]
    first = listed.json["items"][0]
    assert first["subject"].startswith("Hi ") and "campaign_id" in first["tags"] and "raw" not in first
    mail = api.get(f"/local/mail/{first['id']}", key=people.viewer_key).json
    assert "<b>" in mail["html"] and mail["text"].startswith("Hi ")
    names = [header["name"] for header in mail["headers"]]
    assert {"From", "To", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post"} <= set(names)
    assert "/unsubscribe/" in mail["unsubscribe_url"] and mail["one_click"] is True
    page = api.get("/local/mail?limit=1", key=people.admin_key).json
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = api.get(f"/local/mail?limit=1&cursor={page['next_cursor']}", key=people.admin_key).json
    assert rest["items"][0]["id"] != page["items"][0]["id"]

    stranger = new_tenant("Stranger")
    assert api.get("/local/mail", key=stranger.admin_key).json["items"] == []
    assert api.get(f"/local/mail/{first['id']}", key=stranger.admin_key).status == 404


def test_the_mailbox_does_not_exist_on_a_deployed_stage(api, tenant, monkeypatch):
    monkeypatch.setattr(composition, "_MAILBOX", InProcessMailbox())
    monkeypatch.setattr(mailbox_service, "get_config", lambda: SimpleNamespace(stage="prod"))
    assert api.get("/local/mail", key=tenant.admin_key).status == 404
    assert api.get("/local/mail/anything", key=tenant.admin_key).status == 404
    assert api.get("/me", key=tenant.admin_key).json["stage"] == "local"  # only the mailbox's own check was moved
