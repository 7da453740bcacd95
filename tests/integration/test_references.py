"""Every reference between objects goes through the dependents registry: deleting what something uses
answers 409 confirmation_required with the dependents, and ?confirm=true applies the documented cascade.
An evaluation asked for again while one runs starts no second job."""

from __future__ import annotations

import threading

from chalicelib.http.openapi import build_spec
from chalicelib.services import dependents
from tests.support.queues import drain
from tests.support.world import soon


def test_every_kind_that_can_be_referenced_is_deleted_through_a_review():
    spec = build_spec()
    plural = {"tag": "/tags/{name}"}
    for kind in dependents.KINDS:
        path = plural.get(kind, f"/{kind}s/{{{kind}_id}}")
        parameters = [p["name"] for p in spec["paths"][path]["delete"]["parameters"] if p["in"] == "query"]
        assert "confirm" in parameters, path


def test_deleting_an_announcement_a_trigger_gives_asks_first_then_drops_the_action(api, app, world):
    key, segment = world.admin_key, world.ids["segment_id"]
    window = {"starts_at": soon(-1), "ends_at": soon(7)}
    announcement = api.post("/announcements", key=key, json={"title": "Hi", "body": "b", "segments": [segment],
                                                             **window}).json["id"]  # fmt: skip
    only = api.post("/triggers", key=key, json={"name": "announce only", "event": {"type": "contact.created"},
                    "actions": [{"type": "announce", "announcement_id": announcement}]}).json  # fmt: skip
    both = api.post("/triggers", key=key, json={"name": "announce and reward", "event": {"type": "contact.created"},
                    "actions": [{"type": "announce", "announcement_id": announcement},
                                {"type": "reward", "amount": 5}]}).json  # fmt: skip

    asked = api.delete(f"/announcements/{announcement}", key=key)
    assert asked.status == 409 and asked.error_code == "confirmation_required"
    assert {d["id"] for d in asked.json["error"]["details"]["dependents"]} == {only["id"], both["id"]}
    assert api.get(f"/announcements/{announcement}", key=key).status == 200

    assert api.delete(f"/announcements/{announcement}?confirm=true", key=key).status == 204
    assert api.get(f"/announcements/{announcement}", key=key).status == 404
    left_alone = api.get(f"/triggers/{only['id']}", key=key).json
    assert left_alone["enabled"] is False and announcement in left_alone["status_reason"]
    still = api.get(f"/triggers/{both['id']}", key=key).json
    assert still["enabled"] is True and [a["type"] for a in still["actions"]] == ["reward"]
    assert api.patch(f"/triggers/{both['id']}", key=key, json={"name": "renamed"}).status == 200
    assert api.delete(f"/triggers/{only['id']}", key=key).status == 204  # nothing depends on a trigger


def test_evaluate_asked_again_while_it_runs_answers_the_running_job(api, app, world):
    key, segment = world.admin_key, world.ids["segment_id"]
    drain(app)
    first = api.post(f"/segments/{segment}/evaluate", key=key).json
    again = api.post(f"/segments/{segment}/evaluate", key=key).json
    assert again["id"] == first["id"] and again["status"] == "running"
    drain(app)
    assert api.get(f"/jobs/{first['id']}", key=key).json["status"] == "succeeded"

    answers: list[str] = []
    threads = [
        threading.Thread(target=lambda: answers.append(api.post(f"/segments/{segment}/evaluate", key=key).json["id"]))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(answers)) == 1, answers
    drain(app)
