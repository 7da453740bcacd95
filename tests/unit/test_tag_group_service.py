"""Tags and groups (services/tags.py, services/groups.py) on in-memory ports: bulk tagging inline and as a
job, deleting a tag or a group only after review, and the contacts following in version-checked writes."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import ConfirmationRequired, UnknownTags, ValidationFailed
from chalicelib.services import contacts, groups, jobs, tags
from chalicelib.services.context import TenantContext
from tests.support.fakes import fake_context
from tests.support.on_fakes import run_jobs, take_changes


@pytest.fixture(autouse=True)
def tag_and_group_jobs():
    jobs.register_kinds(tags.JOB_KINDS | groups.JOB_KINDS)


@pytest.fixture
def ctx() -> TenantContext:
    return fake_context("ten_1")


def people(ctx: TenantContext, count: int, **fields) -> list[str]:
    made = [contacts.create_contact(ctx, {"external_id": f"p-{n}", **fields})["id"] for n in range(count)]
    take_changes(ctx)
    return made


def announced(ctx: TenantContext) -> list[str]:
    return [m["change"] for m in take_changes(ctx)]


def test_bulk_tagging_inline_changes_each_contact_once_in_batched_writes(ctx):
    tags.create_tag(ctx, {"name": "VIP"})
    ids = people(ctx, 25)
    status, body = tags.bulk_tag(ctx, "vip", {"contact_ids": ids + ids[:3]}, add=True)
    assert status == 200 and (body["changed"], body["unchanged"], body["missing"]) == (25, 0, 0)
    assert announced(ctx) == ["tags"] * 25
    status, body = tags.bulk_tag(ctx, "vip", {"contact_ids": ids[:5]}, add=True)
    assert (body["changed"], body["unchanged"]) == (0, 5) and announced(ctx) == []
    assert tags.get_tag(ctx, "vip")["contact_count"] == 25


def test_bulk_tagging_refuses_unknown_tags_and_contacts_and_changes_nothing(ctx):
    tags.create_tag(ctx, {"name": "vip"})
    ids = people(ctx, 2)
    with pytest.raises(UnknownTags):
        tags.bulk_tag(ctx, "nobody", {"contact_ids": ids}, add=True)
    with pytest.raises(ValidationFailed) as unknown:
        tags.bulk_tag(ctx, "vip", {"contact_ids": [*ids, "ctc_zzzzzzz", "junk"]}, add=True)
    assert unknown.value.details["unknown"] == ["junk", "ctc_zzzzzzz"]
    assert ctx.ports.contacts.count_tag("vip") == 0 and announced(ctx) == []


def test_a_large_bulk_runs_as_a_job_whose_redelivered_chunks_change_nothing(ctx):
    tags.create_tag(ctx, {"name": "vip"})
    ids = people(ctx, tags.INLINE_BULK + 40)
    status, job = tags.bulk_tag(ctx, "vip", {"contact_ids": ids}, add=True)
    assert status == 202
    run_jobs(ctx)
    done = jobs.job_view(ctx, job["id"])
    assert done["status"] == "succeeded" and done["counts"]["updated"] == len(ids)
    assert ctx.ports.contacts.count_tag("vip") == len(ids) and len(announced(ctx)) == len(ids)


def test_a_tag_contacts_carry_is_deleted_after_review_and_the_contacts_lose_it(ctx):
    tags.create_tag(ctx, {"name": "vip"})
    ids = people(ctx, 3, tags=["vip"])
    with pytest.raises(ConfirmationRequired) as review:
        tags.delete_tag(ctx, "vip", confirm=False)
    assert review.value.details["contact_count"] == 3
    job = tags.delete_tag(ctx, "vip", confirm=True)
    assert job is not None and "vip" not in ctx.ports.catalog.usable_tag_names()  # unusable at once
    run_jobs(ctx)
    assert ctx.ports.catalog.get_tag("vip") is None
    assert all(contacts.get_contact(ctx, i)["tags"] == [] for i in ids)
    tags.create_tag(ctx, {"name": "unused"})
    assert tags.delete_tag(ctx, "unused", confirm=False) is None and ctx.ports.catalog.get_tag("unused") is None


def test_a_group_is_deleted_after_review_and_its_members_leave_it(ctx):
    group = groups.create_group(ctx, {"name": "Resellers"})
    ids = people(ctx, 4, group=group["id"])
    assert groups.get_group(ctx, group["id"])["member_count"] == 4
    with pytest.raises(ConfirmationRequired):
        groups.delete_group(ctx, group["id"], confirm=False)
    groups.delete_group(ctx, group["id"], confirm=True)
    run_jobs(ctx)
    assert ctx.ports.catalog.get_group(group["id"]) is None
    assert [contacts.get_contact(ctx, i)["group"] for i in ids] == [None] * 4
    assert announced(ctx) == ["updated"] * 4
