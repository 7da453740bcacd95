"""The services the console added, on in-memory ports: who a key is (GET /me), the jobs listing, contact
search, a contact's segments, and how the Mailbox reads a sent message (GET /me: test_tenant_service.py).
No moto."""

from __future__ import annotations

from email.message import EmailMessage
from types import SimpleNamespace

import pytest

from chalicelib.domain.errors import NotFound, UnknownTags, ValidationFailed
from chalicelib.domain.mailbox import read_message
from chalicelib.services import evaluation, jobs, mailbox, segments, shards
from chalicelib.services.context import TenantContext
from tests.support.fakes import InMemoryCatalog, fake_context
from tests.support.on_fakes import create, put, run_jobs


@pytest.fixture(autouse=True)
def evaluation_kind():
    jobs.register_kinds(evaluation.JOB_KINDS | shards.JOB_KINDS)


@pytest.fixture
def ctx() -> TenantContext:
    return fake_context(catalog=InMemoryCatalog(tags={"vip", "new"}))


def _names(page: dict) -> list[str]:
    return [contact["external_id"] for contact in page["items"]]


def test_search_criteria_are_a_prefix_of_each_field_and_of_first_then_last_name():
    plain = segments.search_criteria("ana")
    assert {node["attr"] for node in plain["any"]} == set(segments.SEARCH_FIELDS)
    assert all(node["op"] == "starts_with" and node["value"] == "ana" for node in plain["any"])
    both = segments.search_criteria("ana lo pez")["any"][-1]["all"]
    assert [(n["attr"], n["value"]) for n in both] == [("first_name", "ana"), ("last_name", "lo pez")]


def test_search_finds_by_prefix_in_ordinal_order_and_pages_without_repeats(ctx):
    for ordinal in range(1, 8):
        put(ctx, ordinal, *(("vip",) if ordinal % 2 else ()))
    assert _names(segments.search_contacts(ctx, {"q": "P1"}, 10, None)) == ["p-1"]  # external id, case ignored
    assert _names(segments.search_contacts(ctx, {"q": "p"}, 10, None)) == [f"p-{n}" for n in range(1, 8)]
    assert _names(segments.search_contacts(ctx, {"q": "p", "tag": "vip"}, 10, None)) == ["p-1", "p-3", "p-5", "p-7"]
    first = segments.search_contacts(ctx, {"q": "p"}, 3, None)
    second = segments.search_contacts(ctx, {"q": "p"}, 3, first["next_cursor"])
    third = segments.search_contacts(ctx, {"q": "p"}, 3, second["next_cursor"])
    assert _names(first) + _names(second) + _names(third) == [f"p-{n}" for n in range(1, 8)]
    assert third["next_cursor"] is None


@pytest.mark.parametrize(
    "query, error, field",
    [({"q": ""}, ValidationFailed, "q"), ({"q": "x" * 201}, ValidationFailed, "q"),
     ({"q": "p", "tag": "gone"}, UnknownTags, "tag"), ({"q": "p", "group": "grp_gone"}, ValidationFailed, "group")],
)  # fmt: skip
def test_search_refuses_naming_the_field(ctx, query, error, field):
    with pytest.raises(error) as refused:
        segments.search_contacts(ctx, query, 10, None)
    assert refused.value.details["field"] == field


def test_a_contacts_segments_are_those_whose_stored_members_include_it(ctx):
    put(ctx, 1, "vip")
    put(ctx, 2)
    vip = create(ctx, {"tag": "vip"}, "VIPs")
    create(ctx, {"tag": "new"}, "New")
    run_jobs(ctx)
    assert [s["id"] for s in segments.contact_segments(ctx, "p-1")["items"]] == [vip["id"]]
    assert segments.contact_segments(ctx, "p-2")["items"] == []
    with pytest.raises(NotFound):
        segments.contact_segments(ctx, "p-404")


def test_jobs_are_listed_newest_first_filtered_and_checked(ctx):
    put(ctx, 1, "vip")
    create(ctx, {"tag": "vip"}, "First")
    create(ctx, {"tag": "new"}, "Second")
    listed = jobs.list_jobs(ctx, {}, 50, None)["items"]
    assert len(listed) == 2 and listed[0]["id"] > listed[1]["id"]
    assert all("errors" not in job for job in listed)  # a listing leaves row problems to GET /jobs/{id}
    assert jobs.list_jobs(ctx, {"status": "succeeded"}, 50, None)["items"] == []
    run_jobs(ctx)
    assert len(jobs.list_jobs(ctx, {"status": "succeeded", "kind": "segment_evaluate"}, 50, None)["items"]) == 2
    for query, field in (({"kind": "nope"}, "kind"), ({"status": "done"}, "status")):
        with pytest.raises(ValidationFailed) as refused:
            jobs.list_jobs(ctx, query, 50, None)
        assert refused.value.details["field"] == field


def _mime() -> str:
    message = EmailMessage()
    message["From"] = "News <news@example.com>"
    message["To"] = "ana@example.com"
    message["Subject"] = "Hi Ana"
    message["List-Unsubscribe"] = "<http://127.0.0.1:8000/unsubscribe/tok_123>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["X-Internal"] = "not shown"
    message.set_content("Hi Ana — text")
    message.add_alternative("<p>Hi <b>Ana</b> — html</p>", subtype="html")
    return message.as_string()


def test_a_sent_message_reads_as_its_shown_headers_bodies_and_unsubscribe_url():
    read = read_message(_mime())
    assert [h["name"] for h in read["headers"]] == [
        "From",
        "To",
        "Subject",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ]
    assert read["html"].strip() == "<p>Hi <b>Ana</b> — html</p>" and read["text"].strip() == "Hi Ana — text"
    assert read["unsubscribe_url"] == "http://127.0.0.1:8000/unsubscribe/tok_123" and read["one_click"] is True


class _Mailbox:
    def __init__(self) -> None:
        self.mail = [{"id": f"m{n}", "number": n, "subject": f"s{n}", "raw": _mime()} for n in range(5, 0, -1)]

    def newest(self, tenant_id, limit, before):
        return [m for m in self.mail if before is None or m["number"] < before][:limit]

    def one(self, tenant_id, message_id):
        return next((dict(m) for m in self.mail if m["id"] == message_id), None)


def test_the_mailbox_pages_newest_first_and_is_refused_off_the_local_stage(monkeypatch):
    box = _Mailbox()
    first = mailbox.list_mail(box, "t", 2, None)
    second = mailbox.list_mail(box, "t", 2, first["next_cursor"])
    last = mailbox.list_mail(box, "t", 2, second["next_cursor"])
    assert [m["id"] for m in first["items"] + second["items"] + last["items"]] == ["m5", "m4", "m3", "m2", "m1"]
    assert last["next_cursor"] is None
    assert mailbox.get_mail(box, "t", "m3")["subject"] == "s3" and "raw" not in mailbox.get_mail(box, "t", "m3")
    with pytest.raises(NotFound):
        mailbox.get_mail(box, "t", "m9")
    monkeypatch.setattr(mailbox, "get_config", lambda: SimpleNamespace(stage="dev"))
    with pytest.raises(NotFound):
        mailbox.list_mail(box, "t", 2, None)
    with pytest.raises(NotFound):
        mailbox.get_mail(box, "t", "m3")
