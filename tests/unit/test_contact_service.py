"""Contacts and their events (services/contacts.py, services/changes.py) on in-memory ports: every write is
announced once through the outbox, races are retried, nothing half-written is left by a refused write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.errors import Conflict, NotFound, UnknownTags, ValidationFailed
from chalicelib.ports.queues import SendFailed
from chalicelib.resources import CONTACT_CHANGES_BULK_QUEUE, CONTACT_CHANGES_QUEUE
from chalicelib.services import changes, contacts
from chalicelib.services.context import TenantContext
from tests.support.fakes import InMemoryCatalog, fake_context
from tests.support.on_fakes import take_changes

AT = "2026-11-30T10:00:00Z"


@pytest.fixture
def ctx() -> TenantContext:
    return fake_context("ten_1", InMemoryCatalog(tags={"vip", "local"}, groups={"grp_1"}))


def announced(ctx: TenantContext) -> list[tuple[str, str]]:
    """(change, contact id) of every change message queued since the last look."""
    return [(m["change"], m["contact_id"]) for m in take_changes(ctx)]


def test_a_created_contact_is_stored_announced_once_and_its_outbox_entry_cleared(ctx):
    made = contacts.create_contact(ctx, {"external_id": "p-1", "email": "Ada@Example.com", "tags": ["vip"]})
    assert made["email"] == "ada@example.com" and made["tags"] == ["vip"] and made["version"] == 1
    assert announced(ctx) == [("created", made["id"])]
    assert ctx.ports.outbox.pending("9999") == []
    assert contacts.get_contact(ctx, "p-1") == made == contacts.get_contact(ctx, made["id"])


def test_refused_contacts_leave_nothing_behind(ctx):
    contacts.create_contact(ctx, {"external_id": "p-1", "email": "ada@example.com"})
    announced(ctx)
    with pytest.raises(UnknownTags):
        contacts.create_contact(ctx, {"external_id": "p-2", "tags": ["nobody"]})
    with pytest.raises(Conflict) as taken:
        contacts.create_contact(ctx, {"external_id": "p-3", "email": "ADA@example.com"})
    assert taken.value.details["field"] == "email"
    with pytest.raises(ValidationFailed):
        contacts.create_contact(ctx, {"external_id": "p-4", "group": "grp_missing"})
    assert [c["external_id"] for c in contacts.list_contacts(ctx, {}, 10, None)["items"]] == ["p-1"]
    assert announced(ctx) == [] and ctx.ports.outbox.pending("9999") == []


def test_an_update_that_loses_a_race_is_retried_on_the_fresh_contact(ctx, monkeypatch):
    made = contacts.create_contact(ctx, {"external_id": "p-1", "first_name": "Ada"})
    store = ctx.ports.contacts
    real_write = store.write
    raced = []

    def another_writer_first(changes_, messages=()):
        if not raced:
            raced.append(True)
            current = store.get_contact(made["id"])
            real_write([(current, contacts.apply_changes(current, contacts.ContactChanges(), ["local"], [], AT))])
        return real_write(changes_, messages)

    monkeypatch.setattr(store, "write", another_writer_first)
    updated = contacts.update_contact(ctx, "p-1", {"last_name": "Lovelace"})
    assert raced and updated["last_name"] == "Lovelace" and updated["tags"] == ["local"] and updated["version"] == 3
    assert [change for change, _ in announced(ctx)] == ["created", "updated"]  # the lost attempt announced nothing


def test_tags_change_in_one_write_and_an_unchanged_contact_is_not_announced(ctx):
    made = contacts.create_contact(ctx, {"external_id": "p-1"})
    announced(ctx)
    after = contacts.change_tags(ctx, made["id"], {"add": ["vip", "local"]})
    assert after["tags"] == ["local", "vip"]
    assert contacts.change_tags(ctx, made["id"], {"add": ["vip"]}) == after
    assert announced(ctx) == [("tags", made["id"])]
    with pytest.raises(ValidationFailed):
        contacts.change_tags(ctx, made["id"], {"add": ["vip"], "remove": ["vip"]})


def test_a_change_sqs_refused_stays_in_the_outbox_until_the_relay_queues_it(ctx, monkeypatch):
    def refusing(queue_name, messages, delay_seconds=0):
        raise SendFailed("SQS is down")

    monkeypatch.setattr(ctx.ports.queues, "send", refusing)
    made = contacts.create_contact(ctx, {"external_id": "p-1"})
    others = [contacts.create_contact(ctx, {"external_id": f"p-{n}"}) for n in (2, 3)]
    contacts.append_bulk_events(ctx, {"events": [{"contact_id": c["id"], "type": "visit", "at": AT} for c in others]})
    monkeypatch.undo()
    pending = [[(m["change"], m["contact_id"]) for m in group] for group in ctx.ports.outbox.pending("9999")]
    assert sorted(pending) == sorted(
        [[("created", made["id"])]] + [[("created", c["id"])] for c in others] + [[("events", c["id"]) for c in others]]
    )  # the messages of one write kept together
    now = datetime.now(UTC)
    assert changes.relay_pending(ctx.ports.outbox, ctx.ports.queues, lambda: now) == 0  # young: its request's
    assert changes.relay_pending(ctx.ports.outbox, ctx.ports.queues, lambda: now + timedelta(minutes=2)) == 5
    assert sorted(announced(ctx)) == sorted(change for group in pending for change in group)
    assert ctx.ports.outbox.pending("9999") == []


def test_events_are_stored_once_per_id_listed_and_gone_with_their_contact(ctx):
    made = contacts.create_contact(ctx, {"external_id": "p-1"})
    announced(ctx)
    at = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    purchase = {"id": "evt_1", "type": "purchase", "at": at, "amount": 70}
    for _ in range(2):
        stored = contacts.append_events(ctx, "p-1", {"events": [purchase]})
    assert stored["event_ids"] == ["evt_1"]
    assert [e["id"] for e in contacts.list_events(ctx, "p-1", 10, None)["items"]] == ["evt_1"]
    assert [change for change, _ in announced(ctx)] == ["events", "events"]  # consumers re-read: harmless
    contacts.delete_contact(ctx, "p-1")
    assert announced(ctx) == [("deleted", made["id"])]
    assert ctx.ports.contacts.read_contact(made["id"]) == (None, [])
    with pytest.raises(NotFound):
        contacts.get_contact(ctx, "p-1")
    again = contacts.create_contact(ctx, {"external_id": "p-1"})  # its identifiers are free again
    assert again["id"] != made["id"]


def test_bulk_events_are_all_checked_before_any_is_stored(ctx):
    contacts.create_contact(ctx, {"external_id": "p-1"})
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    good = {"external_id": "p-1", "type": "visit", "at": at}
    with pytest.raises(ValidationFailed) as refused:
        contacts.append_bulk_events(ctx, {"events": [good, {**good, "external_id": "p-404"}]})
    assert refused.value.details["field"] == "events[1].contact_id"
    assert contacts.list_events(ctx, "p-1", 10, None)["items"] == []
    assert contacts.append_bulk_events(ctx, {"events": [good, good]}) == {"stored": 2, "contacts": 1}


def test_a_lone_change_takes_the_interactive_queue_and_many_at_once_the_bulk_one(ctx, monkeypatch):
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    contacts.create_contact(ctx, {"external_id": "p-1"})
    contacts.create_contact(ctx, {"external_id": "p-2"})
    contacts.append_bulk_events(ctx, {"events": [{"external_id": "p-1", "type": "visit", "at": at}]})
    assert [m["change"] for m in ctx.ports.queues.take(CONTACT_CHANGES_QUEUE)] == ["created", "created", "events"]
    assert ctx.ports.queues.take(CONTACT_CHANGES_BULK_QUEUE) == []
    both = [{"external_id": ref, "type": "visit", "at": at} for ref in ("p-1", "p-2")]
    contacts.append_bulk_events(ctx, {"events": both})
    assert [m["change"] for m in ctx.ports.queues.take(CONTACT_CHANGES_BULK_QUEUE)] == ["events", "events"]
    assert ctx.ports.queues.take(CONTACT_CHANGES_QUEUE) == []
    monkeypatch.setattr(ctx.ports.queues, "send", lambda *args, **kwargs: (_ for _ in ()).throw(SendFailed("down")))
    contacts.create_contact(ctx, {"external_id": "p-3"})
    monkeypatch.undo()
    later = datetime.now(UTC) + timedelta(minutes=2)
    assert changes.relay_pending(ctx.ports.outbox, ctx.ports.queues, lambda: later) == 1
    assert [m["change"] for m in ctx.ports.queues.take(CONTACT_CHANGES_BULK_QUEUE)] == ["created"]  # relayed late


def test_contacts_list_by_tag_and_by_group_page_through_each_once(ctx):
    made = [
        contacts.create_contact(ctx, {"external_id": f"p-{n}", "tags": ["vip"] if n % 2 else [], "group": "grp_1"})
        for n in range(7)
    ]

    def walk(query: dict) -> list[str]:
        seen, cursor = [], None
        while True:
            page = contacts.list_contacts(ctx, query, 2, cursor)
            seen += [c["external_id"] for c in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    assert sorted(walk({})) == sorted(c["external_id"] for c in made)
    assert sorted(walk({"tag": "vip"})) == ["p-1", "p-3", "p-5"]
    assert sorted(walk({"group": "grp_1"})) == sorted(c["external_id"] for c in made)
    with pytest.raises(UnknownTags):
        contacts.list_contacts(ctx, {"tag": "nobody"}, 2, None)
