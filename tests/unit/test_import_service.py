"""Imports (services/imports.py) on in-memory ports: rows create, update or leave contacts as they are,
many per write; a bad row fails alone by line and field; redelivered chunks change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.catalog import Group, Tag
from chalicelib.domain.contacts import SHARDS
from chalicelib.resources import CONTACT_CHANGES_BULK_QUEUE, JOBS_QUEUE
from chalicelib.services import contacts, imports, jobs, shards
from chalicelib.services.context import TenantContext
from tests.support.fakes import InMemoryCatalog, fake_context
from tests.support.on_fakes import run_jobs, take_changes

AT = "2026-11-30T10:00:00Z"


@pytest.fixture(autouse=True)
def import_jobs():
    jobs.register_kinds(imports.JOB_KINDS | shards.JOB_KINDS)


@pytest.fixture
def ctx() -> TenantContext:
    catalog = InMemoryCatalog()
    catalog.create_tag(Tag("vip", None, AT))
    catalog.create_group(Group("grp_1", "Resellers", None, AT))
    return fake_context("ten_1", catalog)


def run_import(ctx: TenantContext, csv: str) -> dict:
    job = imports.start_import(ctx, csv.encode(), "text/csv")
    run_jobs(ctx)  # every chunk delivered twice
    return jobs.job_view(ctx, job["id"])


def test_rows_create_update_or_leave_contacts_and_each_change_is_announced_once(ctx):
    contacts.create_contact(ctx, {"external_id": "p-1", "email": "ada@example.com", "first_name": "Ada"})
    take_changes(ctx)
    rows = "".join(f"p-{n},p{n}@example.com,Person {n},vip,Resellers\n" for n in range(2, 40))
    job = run_import(ctx, "external_id,email,first_name,tags,group\np-1,ada@example.com,Ada,,\n" + rows)
    assert job["status"] == "succeeded"
    assert (job["counts"]["created"], job["counts"]["updated"], job["counts"]["unchanged"]) == (38, 0, 1)
    assert len(ctx.ports.queues.take(CONTACT_CHANGES_BULK_QUEUE)) == 38  # a job's changes: the bulk queue
    assert contacts.get_contact(ctx, "p-7")["group"] == "grp_1" and ctx.ports.contacts.count_tag("vip") == 38

    again = run_import(ctx, "external_id,first_name\np-7,Seven\np-8,Person 8\n")
    assert (again["counts"]["updated"], again["counts"]["unchanged"]) == (1, 1)
    assert contacts.get_contact(ctx, "p-7")["first_name"] == "Seven"


def test_a_bad_row_fails_alone_by_line_and_field(ctx):
    csv = "external_id,email,tags\np-1,a@example.com,vip\np-2,not-an-address,\np-3,c@example.com,nobody\np-4,,\n"
    job = run_import(ctx, csv)
    assert job["status"] == "completed_with_errors" and job["counts"]["created"] == 2
    errors = jobs.job_errors(ctx, job["id"], 10, None)["items"]
    assert [(e["line"], e["field"]) for e in errors] == [(3, "email"), (4, "tags")]


def test_a_finished_import_compacts_every_shard_once_quiet_so_the_first_reader_reads_snapshots(ctx, monkeypatch):
    job = run_import(ctx, "external_id,tags\n" + "".join(f"p-{n},vip\n" for n in range(70)) + "p-x,nobody\n")
    assert job["status"] == "completed_with_errors"  # with errors or not, the shards are compacted
    compaction = ctx.ports.queues.take(JOBS_QUEUE)
    assert [m["job_kind"] for m in compaction] == [shards.COMPACT] * SHARDS
    for message in compaction:  # the import just wrote: they wait until its shards are quiet
        jobs.run_chunk(ctx, message)
    assert sorted(m["chunk"] for m in ctx.ports.queues.take(JOBS_QUEUE)) == list(range(SHARDS))
    assert ctx.ports.snapshots.manifest(0).key is None
    monkeypatch.setattr(shards, "QUIET", timedelta(0))
    for message in compaction:
        jobs.run_chunk(ctx, message)
    assert all(ctx.ports.contacts.dirty(shard) == {} for shard in range(SHARDS))
    assert sum(ctx.ports.snapshots.manifest(shard).contacts for shard in range(SHARDS)) == 70
    assert sum(image.size for image in ctx.shards.images(range(SHARDS))) == 70
    assert ctx.ports.queues.take(JOBS_QUEUE) == []  # read from fresh snapshots: nothing asked
    run_import(ctx, "external_id\np-y\n")  # a small import leaves it to readers
    assert ctx.ports.queues.take(JOBS_QUEUE) == []


def test_rows_naming_one_contact_twice_are_applied_in_order(ctx):
    job = run_import(ctx, "external_id,email,first_name\np-1,ada@example.com,A\np-1,ada@example.com,Ada\n")
    assert job["counts"]["created"] == 1 and job["counts"]["updated"] == 1
    assert contacts.get_contact(ctx, "p-1")["first_name"] == "Ada"


def test_an_email_of_a_contact_with_another_external_id_is_refused(ctx):
    contacts.create_contact(ctx, {"external_id": "p-1", "email": "ada@example.com"})
    job = run_import(ctx, "external_id,email\np-9,ada@example.com\n")
    assert job["counts"]["created"] == 0
    assert [e["field"] for e in jobs.job_errors(ctx, job["id"], 10, None)["items"]] == ["email"]


def test_new_contacts_take_ordinals_from_reserved_blocks_and_never_share_one(ctx):
    run_import(ctx, "external_id\n" + "".join(f"p-{n}\n" for n in range(30)))
    run_import(ctx, "external_id\n" + "".join(f"q-{n}\n" for n in range(30)))
    made, _ = ctx.ports.contacts.page_of_shards(100, None)
    assert len(made) == 60 and len({c.ordinal for c in made}) == 60 and len({c.id for c in made}) == 60
