"""The campaign API: drafts, bad input, lifecycle, preview, test sends, scheduling, unsubscribe, isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest

from chalicelib.composition import due_campaigns, tenant_context
from chalicelib.domain.clock import to_rfc3339
from chalicelib.resources import SEND_QUEUE
from chalicelib.services import campaigns as campaign_service
from chalicelib.services import mail as mail_service
from chalicelib.services import sending
from chalicelib.services import tenants as tenant_service
from tests.integration.test_campaign_sending import make_segment, run_sends
from tests.support import mail
from tests.support.population import import_and_wait
from tests.support.queues import take_messages

PEOPLE = (
    "external_id,email,tags,first_name,attributes.city\n"
    "p-1,ada@example.com,news,Ada,London\n"
    "p-2,bob@example.com,news;vip,<script>alert(1)</script>,Paris\n"
    "p-3,cy@example.com,vip,Cy,Rome\n"
)


@pytest.fixture
def studio(api, app, tenant):
    for tag in ("news", "vip"):
        assert api.post("/tags", key=tenant.admin_key, json={"name": tag}).status == 201
    assert import_and_wait(api, app, tenant.admin_key, PEOPLE)["status"] == "succeeded"
    take_messages("segments-contact-changes", tenant.id)
    tenant.news = make_segment(api, app, tenant, {"tag": "news"}, "News")
    tenant.vip = make_segment(api, app, tenant, {"tag": "vip"}, "VIP")
    return tenant


@pytest.fixture(autouse=True)
def immediate(monkeypatch):
    monkeypatch.setattr(sending, "REQUEUE_DELAY_CAP", 0)
    monkeypatch.setattr(tenant_service, "SETTINGS_TTL_SECONDS", 0)


def body(tenant, **overrides):
    return {
        "name": "Welcome",
        "from": "hello@example.com",
        "subject": "Hi {{ contact.first_name }}",
        "html": "<p>Hello {{ contact.first_name }} from {{ contact.attributes.city }}</p>"
        "<a href='{{ unsubscribe_url }}'>unsubscribe</a>",
        "text": "Hello {{ contact.first_name }}",
        "segments": [tenant.news],
        **overrides,
    }


def create(api, tenant, **overrides):
    return api.post("/campaigns", key=tenant.admin_key, json=body(tenant, **overrides))


def test_a_draft_is_created_read_listed_edited_and_deleted(api, studio):
    created = create(api, studio)
    assert created.status == 201, created.text
    draft = created.json
    assert draft["id"].startswith("cmp_") and draft["status"] == "draft" and draft["from"] == "hello@example.com"
    assert draft["stats"]["audience"] is None and draft["stats"]["sent"] == 0
    assert api.get(f"/campaigns/{draft['id']}", key=studio.viewer_key).json == draft
    assert [c["id"] for c in api.get("/campaigns", key=studio.viewer_key).json["items"]] == [draft["id"]]

    edited = api.patch(f"/campaigns/{draft['id']}", key=studio.admin_key, json={"exclude_segments": [studio.vip]})
    assert edited.status == 200 and edited.json["exclude_segments"] == [studio.vip] and edited.json["version"] == 2
    assert api.delete(f"/campaigns/{draft['id']}", key=studio.admin_key).status == 204
    assert api.get(f"/campaigns/{draft['id']}", key=studio.viewer_key).status == 404


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"html": "<p>\n{{ contact.nickname }}</p>"}, "html", "validation_error"),
        ({"text": "{% if %}"}, "text", "validation_error"),
        ({"subject": "{{ ''.__class__.__mro__ }}"}, "subject", "validation_error"),
        ({"html": "{{ contact.attributes.shoe_size }}"}, "html", "validation_error"),
        ({"html": None, "text": None}, "html", "validation_error"),
        ({"segments": []}, "segments", "validation_error"),
        ({"segments": ["seg_missing"]}, "segments[0]", "validation_error"),
        ({"segments": [f"seg_{n}" for n in range(11)]}, "segments", "limit_exceeded"),
        ({"exclude_segments": ["seg_missing"]}, "exclude_segments[0]", "validation_error"),
        ({"from": "not an address"}, "from", "validation_error"),
        ({"from": "news@unverified.test"}, "from", "validation_error"),
        ({"send_at": "yesterday"}, "send_at", "validation_error"),
        ({"send_at": "2020-01-01T00:00:00Z"}, "send_at", "validation_error"),
        ({"name": ""}, "name", "validation_error"),
        ({"color": "red"}, "color", "validation_error"),
    ],
)
def test_bad_drafts_are_refused_naming_the_field(api, studio, overrides, field, code):
    reply = create(api, studio, **overrides)
    assert reply.status == 422, reply.text
    assert (reply.error_field, reply.error_code) == (field, code)
    assert api.get("/campaigns", key=studio.viewer_key).json["items"] == []


def test_template_errors_give_the_line(api, studio):
    reply = create(api, studio, html="<p>one</p>\n<p>two</p>\n{{ contct.first_name }}")
    assert reply.json["error"]["details"] == {"field": "html", "line": 3}


def test_a_segment_both_targeted_and_excluded_is_refused(api, studio):
    reply = create(api, studio, exclude_segments=[studio.news])
    assert reply.status == 422 and reply.error_field == "exclude_segments"


def test_the_tenant_limit_on_segments_applies(api, studio):
    assert api.patch("/settings", key=studio.admin_key, json={"limits": {"segments_per_campaign": 1}}).status == 200
    reply = create(api, studio, segments=[studio.news, studio.vip])
    assert reply.status == 422 and reply.error_code == "limit_exceeded"


def test_preview_renders_for_a_contact_and_escapes_html(api, studio):
    draft = create(api, studio).json
    bob = api.post(f"/campaigns/{draft['id']}/preview", key=studio.viewer_key, json={"contact_id": "p-2"})
    assert bob.status == 200, bob.text
    assert bob.json["subject"] == "Hi <script>alert(1)</script>"
    assert "&lt;script&gt;alert(1)&lt;/script&gt; from Paris" in bob.json["html"]
    assert "<script>" not in bob.json["html"]
    assert "/unsubscribe/" in bob.json["html"]
    missing = api.post(f"/campaigns/{draft['id']}/preview", key=studio.viewer_key, json={"contact_id": "nobody"})
    assert missing.status == 404


def test_test_sends_go_now_outside_stats_and_never_to_suppressed_addresses(api, studio):
    draft = create(api, studio).json
    api.post("/suppressions", key=studio.admin_key, json={"email": "blocked@example.com"})
    before = mail.mark()
    reply = api.post(
        f"/campaigns/{draft['id']}/test",
        key=studio.admin_key,
        json={"emails": ["ada@example.com", "qa@example.com", "Blocked@example.com"]},
    )
    assert reply.status == 200, reply.text
    statuses = {item["email"]: item["status"] for item in reply.json["items"]}
    assert statuses == {"ada@example.com": "sent", "qa@example.com": "sent", "blocked@example.com": "suppressed"}
    sent = {m.to: m for m in mail.sent_since(before)}
    assert set(sent) == {"ada@example.com", "qa@example.com"}
    assert sent["ada@example.com"].subject == "[Test] Hi Ada"  # rendered as the contact with that address
    assert sent["qa@example.com"].subject == "[Test] Hi Sample"
    assert api.get(f"/campaigns/{draft['id']}", key=studio.viewer_key).json["stats"]["sent"] == 0
    six = [f"t{n}@example.com" for n in range(6)]
    assert api.post(f"/campaigns/{draft['id']}/test", key=studio.admin_key, json={"emails": six}).status == 422
    bad = api.post(f"/campaigns/{draft['id']}/test", key=studio.admin_key, json={"emails": ["nope"]})
    assert bad.status == 422 and bad.error_field == "emails[0]"


def test_mail_carries_the_sender_name_reply_to_date_and_a_message_id_on_the_sending_domain(api, studio):
    sender = {"sender": {"name": "Açaí Club « Lisboa »", "reply_to": "help@example.com"}}
    assert api.patch("/settings", key=studio.admin_key, json=sender).status == 200
    draft = create(api, studio).json
    before = mail.mark()
    api.post(f"/campaigns/{draft['id']}/test", key=studio.admin_key, json={"emails": ["qa@example.com"]})
    (sent,) = mail.sent_since(before)
    assert sent.headers["From"].addresses[0].display_name == "Açaí Club « Lisboa »"
    assert sent.headers["From"].addresses[0].addr_spec == "hello@example.com"
    assert sent.headers["Reply-To"] == "help@example.com"
    assert parsedate_to_datetime(sent.headers["Date"]).tzinfo is not None
    assert sent.headers["Message-ID"].endswith("@example.com>")
    assert "=?utf-8?" in sent.raw.split("\n\n", 1)[0].lower()  # the non-ASCII name is RFC 2047-encoded


def test_a_campaign_to_a_segment_sends_and_freezes(api, app, studio):
    draft = create(api, studio, exclude_segments=[studio.vip]).json
    before = mail.mark()
    sending_now = api.post(f"/campaigns/{draft['id']}/send", key=studio.admin_key)
    assert sending_now.status == 200 and sending_now.json["status"] == "sending"
    assert api.patch(f"/campaigns/{draft['id']}", key=studio.admin_key, json={"name": "x"}).status == 409
    assert api.delete(f"/campaigns/{draft['id']}", key=studio.admin_key).status == 409
    assert api.post(f"/campaigns/{draft['id']}/send", key=studio.admin_key).status == 409
    run_sends(app, studio, times=2)
    assert [m.to for m in mail.sent_since(before)] == ["ada@example.com"]
    done = api.get(f"/campaigns/{draft['id']}", key=studio.viewer_key).json
    assert done["status"] == "sent" and done["stats"]["sent"] == 1 and done["finished_at"]
    recipients = api.get(f"/campaigns/{draft['id']}/recipients", key=studio.viewer_key).json["items"]
    assert [(r["email"], r["status"]) for r in recipients] == [("ada@example.com", "sent")]
    assert api.get(f"/campaigns/{draft['id']}/recipients?status=lost", key=studio.viewer_key).status == 422


def test_a_campaign_to_an_empty_segment_finishes_with_nobody_mailed(api, app, studio):
    api.post("/tags", key=studio.admin_key, json={"name": "nobody"})
    empty = make_segment(api, app, studio, {"tag": "nobody"}, "Empty")
    draft = create(api, studio, segments=[empty]).json
    api.post(f"/campaigns/{draft['id']}/send", key=studio.admin_key)
    run_sends(app, studio, times=2)
    done = api.get(f"/campaigns/{draft['id']}", key=studio.viewer_key).json
    assert done["status"] == "sent" and done["stats"]["audience"] == 0 and done["progress"]["batches_total"] == 0


def test_a_segment_still_evaluating_cannot_be_sent_to(api, app, studio):
    fresh = api.post("/segments", key=studio.admin_key, json={"name": "Fresh", "criteria": {"tag": "news"}}).json
    draft = create(api, studio, segments=[fresh["id"]]).json
    reply = api.post(f"/campaigns/{draft['id']}/send", key=studio.admin_key)
    assert reply.status == 409 and reply.error_field == "segments[0]"


def start_due(clock) -> int:
    """The minute schedule's call, at ``clock``'s time."""
    return campaign_service.start_due(due_campaigns, tenant_context, clock)


def test_a_scheduled_campaign_starts_when_the_minute_schedule_finds_it_due(api, app, studio):
    at = datetime.now(UTC) + timedelta(hours=2)
    draft = create(api, studio, send_at=to_rfc3339(at)).json
    scheduled = api.post(f"/campaigns/{draft['id']}/send", key=studio.admin_key).json
    assert scheduled["status"] == "scheduled"
    assert start_due(lambda: at - timedelta(minutes=1)) == 0
    moved = api.patch(
        f"/campaigns/{draft['id']}", key=studio.admin_key, json={"subject": "Soon, {{ contact.first_name }}"}
    )
    assert moved.status == 200 and moved.json["status"] == "scheduled"
    before = mail.mark()
    assert start_due(lambda: at + timedelta(seconds=30)) == 1
    assert start_due(lambda: at + timedelta(minutes=1)) == 0  # started once
    run_sends(app, studio)
    assert sorted(m.subject for m in mail.sent_since(before)) == ["Soon, <script>alert(1)</script>", "Soon, Ada"]

    unscheduled = create(api, studio, send_at=to_rfc3339(at)).json
    api.post(f"/campaigns/{unscheduled['id']}/send", key=studio.admin_key)
    back = api.patch(f"/campaigns/{unscheduled['id']}", key=studio.admin_key, json={"send_at": None})
    assert back.json["status"] == "draft"
    assert start_due(lambda: at + timedelta(hours=1)) == 0


def test_unsubscribe_get_only_asks_post_unsubscribes_and_forged_links_are_404(api, app, studio):
    draft = create(api, studio).json
    url = mail_service.unsubscribe_url(studio.id, draft["id"], "ada@example.com")
    token = url.rsplit("/", 1)[1]
    for _ in range(3):
        page = api.get(f"/unsubscribe/{token}")
        assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert api.get("/suppressions", key=studio.viewer_key).json["items"] == []  # GET never unsubscribes

    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert api.get(f"/unsubscribe/{forged}").status == 404
    assert api.post(f"/unsubscribe/{forged}", body="List-Unsubscribe=One-Click",
                    headers={"content-type": "application/x-www-form-urlencoded"}).status == 404  # fmt: skip
    multipart = '--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--b--\r\n'
    for _ in range(2):  # idempotent
        done = api.post(
            f"/unsubscribe/{token}", body=multipart, headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert done.status == 200 and "ada@example.com" in done.text
    items = api.get("/suppressions", key=studio.viewer_key).json["items"]
    assert [(s["email"], s["reason"], s["campaign_id"]) for s in items] == [
        ("ada@example.com", "unsubscribed", draft["id"])
    ]
    assert api.delete("/suppressions/ada@example.com", key=studio.admin_key).status == 409

    before = mail.mark()
    api.post(f"/campaigns/{draft['id']}/send", key=studio.admin_key)
    run_sends(app, studio)
    assert [m.to for m in mail.sent_since(before)] == ["bob@example.com"]
    stats = api.get(f"/campaigns/{draft['id']}", key=studio.viewer_key).json["stats"]
    assert (stats["sent"], stats["unsubscribed"]) == (1, 1)


def test_suppressions_api_adds_lists_and_lifts(api, studio):
    added = api.post("/suppressions", key=studio.admin_key, json={"email": " Eve@Example.com "})
    assert added.status == 201 and added.json["email"] == "eve@example.com" and added.json["reason"] == "manual"
    assert api.post("/suppressions", key=studio.admin_key, json={"email": "eve"}).error_field == "email"
    assert api.post("/suppressions", key=studio.viewer_key, json={"email": "x@example.com"}).status == 403
    assert [s["email"] for s in api.get("/suppressions", key=studio.viewer_key).json["items"]] == ["eve@example.com"]
    assert api.delete("/suppressions/eve@example.com", key=studio.admin_key).status == 204
    assert api.delete("/suppressions/eve@example.com", key=studio.admin_key).status == 404


def test_deleting_a_targeted_segment_lists_the_campaign_and_returns_it_to_draft(api, studio):
    draft = create(api, studio).json
    dependents = api.get(f"/segments/{studio.news}/dependents", key=studio.viewer_key).json["items"]
    assert {"type": "campaign", "id": draft["id"], "name": "Welcome", "status": "draft"} in dependents
    assert api.delete(f"/segments/{studio.news}?confirm=true", key=studio.admin_key).status == 204
    after = api.get(f"/campaigns/{draft['id']}", key=studio.viewer_key).json
    assert after["segments"] == [] and after["status"] == "draft" and "was deleted" in after["status_reason"]
    refused = api.post(f"/campaigns/{draft['id']}/send", key=studio.admin_key)
    assert refused.status == 409 and refused.error_field == "segments"


def test_viewers_read_but_do_not_write_and_the_feature_flag_gates(api, studio, new_tenant):
    draft = create(api, studio).json
    viewer = studio.viewer_key
    assert api.post("/campaigns", key=viewer, json=body(studio)).status == 403
    for action in ("send", "pause", "resume", "cancel", "test"):
        assert (
            api.post(f"/campaigns/{draft['id']}/{action}", key=viewer, json={"emails": ["a@example.com"]}).status == 403
        )
    assert api.patch(f"/campaigns/{draft['id']}", key=viewer, json={"name": "x"}).status == 403
    off = new_tenant("No segments", segments=False)
    assert api.get("/campaigns", key=off.admin_key).error_code == "feature_disabled"
    assert api.get("/campaigns", key=None).status == 401


def test_tenant_b_cannot_read_or_change_tenant_a_campaigns_or_suppressions(api, app, studio, other_tenant):
    draft = create(api, studio).json
    api.post("/suppressions", key=studio.admin_key, json={"email": "eve@example.com"})
    other = other_tenant.admin_key
    cid = draft["id"]
    for method, path, payload in [
        ("GET", f"/campaigns/{cid}", None),
        ("PATCH", f"/campaigns/{cid}", {"name": "stolen"}),
        ("DELETE", f"/campaigns/{cid}", None),
        ("POST", f"/campaigns/{cid}/preview", {"contact_id": "p-1"}),
        ("POST", f"/campaigns/{cid}/test", {"emails": ["thief@example.com"]}),
        ("POST", f"/campaigns/{cid}/send", None),
        ("POST", f"/campaigns/{cid}/pause", None),
        ("POST", f"/campaigns/{cid}/resume", None),
        ("POST", f"/campaigns/{cid}/cancel", None),
        ("GET", f"/campaigns/{cid}/recipients", None),
        ("DELETE", "/suppressions/eve@example.com", None),
    ]:
        reply = api.request(method, path, key=other, json=payload)
        assert reply.status == 404, (method, path, reply.text)
    assert api.get("/campaigns", key=other).json["items"] == []
    assert api.get("/suppressions", key=other).json["items"] == []
    theirs = api.post("/campaigns", key=other, json=body(studio))  # A's segments are not B's
    assert theirs.status == 422 and theirs.error_field == "segments[0]"
    assert take_messages(SEND_QUEUE, studio.id) == []
    after = api.get(f"/campaigns/{cid}", key=studio.admin_key).json
    assert after["name"] == "Welcome" and after["status"] == "draft" and after["version"] == 1
    assert [s["email"] for s in api.get("/suppressions", key=studio.viewer_key).json["items"]] == ["eve@example.com"]
