"""The hostile corpora of tests/support/hostile.py, on every route that takes each kind of value.

Each value is refused with a 422 naming the field and nothing is written (the listing or the record
reads the same afterwards). Numbers and query whole numbers are enrolled from the OpenAPI document:
every operation with a JSON body and every integer query parameter, so a route added later is covered.
A tenant holding a value written before these rules (a year-1 window) still reads, lists, and deletes.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from chalicelib.http.openapi import build_spec
from chalicelib.storage.engagements import EngagementTable
from tests.integration.test_campaign_sending import make_segment
from tests.support.hostile import (
    HOSTILE_DATETIMES,
    HOSTILE_DURATIONS,
    HOSTILE_NUMBERS,
    HOSTILE_QUERY_WHOLE_NUMBERS,
    HOSTILE_SCHEDULES,
    HOSTILE_SEARCH_TEXT,
    HOSTILE_TIME_ZONES,
    HOSTILE_URLS,
    INVALID_SEARCH_TEXT,
)
from tests.support.population import import_and_wait
from tests.support.queues import drain
from tests.support.world import key_for, path_for, soon

SPEC = build_spec()


# --- date-times -----------------------------------------------------------------------------------------


def _base_bodies(world) -> dict[tuple[str, str], dict]:
    """A valid body for every operation that takes a date-time; each site puts a hostile value in one field."""
    segment, window = world.ids["segment_id"], {"starts_at": soon(-1), "ends_at": soon(7)}
    return {
        ("POST", "/announcements"): {"title": "t", "body": "b", "segments": [segment], **window},
        ("PATCH", "/announcements/{announcement_id}"): {"title": "t2"},
        ("POST", "/challenges"): {"name": "c", "segments": [segment], **window,
                                  "goal": {"event_type": "purchase", "count": 1}, "reward": {"amount": 1}},
        ("PATCH", "/challenges/{challenge_id}"): {"name": "c2"},
        ("POST", "/campaigns"): {"name": "n", "from": "news@example.com", "subject": "s", "text": "t",
                                 "segments": [segment]},
        ("PATCH", "/campaigns/{campaign_id}"): {"name": "n2"},
        ("POST", "/contacts"): {"external_id": "new-one"},
        ("PATCH", "/contacts/{contact_id}"): {"first_name": "Ana"},
        ("POST", "/contacts/{contact_id}/events"): {"events": [{"type": "purchase", "at": soon(-1)}]},
        ("POST", "/events"): {"events": [{"type": "purchase", "at": soon(-1), "contact_id": world.ids["contact_id"]}]},
        ("POST", "/segments/preview"): {"criteria": {"attr": "signup_at", "op": "gt", "value": soon(-1)}},
        ("POST", "/segments"): {"name": "x", "criteria": {"attr": "signup_at", "op": "gt", "value": soon(-1)}},
    }  # fmt: skip


def _datetime_fields(schema: object, path: str = "") -> list[str]:
    """JSON paths of the ``format: date-time`` properties of a request schema (array items as ``[0]``)."""
    if not isinstance(schema, dict):
        return []
    found = [path] if schema.get("format") == "date-time" else []
    for name, child in schema.get("properties", {}).items():
        found += _datetime_fields(child, f"{path}.{name}" if path else name)
    if "items" in schema:
        found += _datetime_fields(schema["items"], f"{path}[0]")
    return found


DECLARED_DATETIMES = sorted(
    (method.upper(), path, field)
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
    for content in operation.get("requestBody", {}).get("content", {}).values()
    for field in _datetime_fields(content["schema"])
)
"""Enrolled from the OpenAPI document: a route that adds a date-time field is fuzzed with the corpus (and fails
until _base_bodies gives it a valid body)."""
FREE_FORM_DATETIMES = [
    ("POST", "/contacts", "attributes.signup_at"),
    ("PATCH", "/contacts/{contact_id}", "attributes.signup_at"),
    ("POST", "/segments/preview", "criteria.value"),
    ("POST", "/segments", "criteria.value"),
]
"""Date-times inside free-form values the schema cannot mark: typed attributes and criteria values."""
DATETIME_SITES = DECLARED_DATETIMES + FREE_FORM_DATETIMES


def _with(body: dict, field: str, value: object) -> dict:
    body = json.loads(json.dumps(body))
    parts = [int(p) if p.isdigit() else p for p in field.replace("[", ".").replace("]", "").split(".")]
    target = body
    for part in parts[:-1]:
        target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
    target[parts[-1]] = value
    return body


def _record_of(method: str, template: str) -> str | None:
    """Where a write would show: the record a PATCH changes, the listing a POST adds to."""
    if template.endswith("/events"):
        return template
    if method == "PATCH":
        return template
    return None if template.endswith("/preview") or template == "/events" else template


def test_every_date_time_field_of_the_contract_is_enrolled():
    assert ("POST", "/announcements", "starts_at") in DECLARED_DATETIMES
    assert ("POST", "/contacts/{contact_id}/events", "events[0].at") in DECLARED_DATETIMES
    assert ("PATCH", "/campaigns/{campaign_id}", "send_at") in DECLARED_DATETIMES


@pytest.mark.parametrize("method, template, field", DATETIME_SITES, ids=[" ".join(s) for s in DATETIME_SITES])
def test_hostile_datetimes_are_a_422_naming_the_field_on_every_route_and_write_nothing(
    api, world, method, template, field
):
    base = _base_bodies(world)[(method, template)]
    path = path_for(template, world.ids)
    record = _record_of(method, template)
    before = api.get(path_for(record, world.ids), key=world.admin_key).text if record else None
    for value in HOSTILE_DATETIMES:
        if value is None and (field.startswith("attributes.") or field == "send_at"):
            continue  # null removes an attribute, or means "send when I press send": not a date-time at all
        reply = api.request(method, path, key=world.admin_key, json=_with(base, field, value))
        assert reply.status == 422, (method, template, field, value, reply.text)
        assert reply.error_field == field, (method, template, field, value, reply.text)
    if record:
        assert api.get(path_for(record, world.ids), key=world.admin_key).text == before


IMPORT_BODY_TYPES = sorted(SPEC["paths"]["/contacts/import"]["post"]["requestBody"]["content"])
"""Enrolled from the OpenAPI document: every body type the import takes runs the corpus."""


@pytest.mark.parametrize("content_type", IMPORT_BODY_TYPES)
def test_hostile_datetimes_in_import_cells_are_row_errors_naming_the_field(api, app, world, content_type):
    values = [v for v in HOSTILE_DATETIMES if isinstance(v, str) and "\n" not in v and "," not in v]
    if content_type == "text/csv":
        text = "external_id,attributes.signup_at\n" + "".join(f"h-{i},{v}\n" for i, v in enumerate(values) if v)
    else:
        text = "".join(json.dumps({"external_id": f"h-{i}", "attributes": {"signup_at": v}}) + "\n"
                       for i, v in enumerate(values))  # fmt: skip
    job = import_and_wait(api, app, world.admin_key, text, content_type)
    expected = len([v for v in values if v]) if content_type == "text/csv" else len(values)
    assert job["counts"].get("created", 0) == 0, job
    errors = api.get(f"/jobs/{job['id']}/errors?limit=500", key=world.admin_key).json["items"]
    assert len(errors) == expected and {e["field"] for e in errors} == {"attributes.signup_at"}, errors


# --- numbers ---------------------------------------------------------------------------------------------

JSON_BODY_OPERATIONS = sorted(
    (method.upper(), path)
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
    if "application/json" in operation.get("requestBody", {}).get("content", {})
)


@pytest.mark.parametrize("method, path", JSON_BODY_OPERATIONS, ids=[f"{m} {p}" for m, p in JSON_BODY_OPERATIONS])
def test_numbers_dynamodb_cannot_store_are_a_422_naming_the_field_on_every_json_route(api, world, method, path):
    access = SPEC["paths"][path][method.lower()]["x-access"]
    for value in HOSTILE_NUMBERS:
        body = '{"payload": {"items": [1, ' + json.dumps(value) + "]}}"
        reply = api.request(method, path_for(path, world.ids), key=key_for(world, access), body=body)
        assert reply.status == 422, (method, path, value, reply.text)
        assert reply.error_field == "payload.items[1]"
    huge = '{"amount": ' + "9" * 4400 + "}"  # past Python's own 4,300-digit limit
    reply = api.request(method, path_for(path, world.ids), key=key_for(world, access), body=huge)
    assert reply.status == 422 and reply.error_field == "amount", reply.text


def test_a_huge_integer_in_json_lines_is_a_row_error(api, app, world):
    text = '{"external_id": "n-1", "attributes": {"size": ' + "7" * 5000 + '}}\n{"external_id": "n-2"}\n'
    job = import_and_wait(api, app, world.admin_key, text, "application/x-ndjson")
    assert job["counts"]["created"] == 1
    errors = api.get(f"/jobs/{job['id']}/errors", key=world.admin_key).json["items"]
    assert [(e["line"], e["field"]) for e in errors] == [(1, "attributes.size")]


# --- whole numbers in query strings ----------------------------------------------------------------------

INTEGER_QUERY_PARAMETERS = sorted(
    (method.upper(), path, parameter["name"])
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
    for parameter in operation["parameters"]
    if parameter["in"] == "query" and parameter["schema"].get("type") == "integer"
)


@pytest.mark.parametrize(
    "method, path, name", INTEGER_QUERY_PARAMETERS, ids=[f"{m} {p} {n}" for m, p, n in INTEGER_QUERY_PARAMETERS]
)
def test_query_whole_numbers_are_strict_on_every_route(api, world, method, path, name):
    access = SPEC["paths"][path][method.lower()]["x-access"]
    operation = SPEC["paths"][path][method.lower()]
    body = {} if "requestBody" in operation else None
    for raw in HOSTILE_QUERY_WHOLE_NUMBERS:
        target = f"{path_for(path, world.ids)}?{name}={quote(raw)}"
        reply = api.request(method, target, key=key_for(world, access), **({"json": body} if body is not None else {}))
        assert reply.status == 422, (method, path, name, raw, reply.text)
        assert reply.error_field == name


def test_every_integer_query_parameter_is_enrolled():
    names = {name for _, _, name in INTEGER_QUERY_PARAMETERS}
    assert {"limit", "top", "expires_in"} <= names


# --- search text ---------------------------------------------------------------------------------------------

SEARCH_PARAMETERS = sorted(
    (method.upper(), path)
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
    for parameter in operation["parameters"]
    if parameter["in"] == "query" and parameter["name"] == "q"
)


@pytest.mark.parametrize("method, path", SEARCH_PARAMETERS, ids=[f"{m} {p}" for m, p in SEARCH_PARAMETERS])
def test_hostile_search_text_is_a_literal_prefix_or_a_422_naming_q(api, world, method, path):
    target = path_for(path, world.ids)
    for raw in HOSTILE_SEARCH_TEXT:
        reply = api.request(method, f"{target}?q={quote(raw)}", key=world.viewer_key)
        assert reply.status == 200 and reply.json["items"] == [], (raw, reply.text)
    for raw in INVALID_SEARCH_TEXT:
        reply = api.request(method, f"{target}?q={quote(raw)}", key=world.viewer_key)
        assert (reply.status, reply.error_field) == (422, "q"), (raw, reply.text)
    assert api.request(method, f"{target}?q=%FF%FE", key=world.viewer_key).status in (200, 400, 422)


def test_every_search_parameter_is_enrolled():
    assert ("GET", "/contacts") in SEARCH_PARAMETERS


# --- schedules -------------------------------------------------------------------------------------------


# --- URLs (webhook endpoints) ---------------------------------------------------------------------------

URL_SITES = sorted(
    (method.upper(), path)
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
    if "url" in operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    .get("properties", {})
)  # fmt: skip
"""Every operation whose JSON body takes a ``url``, read from the OpenAPI document."""


@pytest.mark.parametrize("method, path", URL_SITES, ids=[f"{m} {p}" for m, p in URL_SITES])
def test_hostile_urls_are_a_422_naming_url_and_write_nothing(api, world, method, path):
    target, key = path_for(path, world.ids), key_for(world, "admin")
    before = api.get("/webhooks", key=key).json
    for raw in HOSTILE_URLS:
        reply = api.request(method, target, key=key, json={"url": raw, "events": ["*"]})
        assert (reply.status, reply.error_field) == (422, "url"), (raw, reply.text)
    assert api.get("/webhooks", key=key).json == before


def test_every_url_field_is_enrolled():
    assert URL_SITES == [("PATCH", "/webhooks/{webhook_id}"), ("POST", "/webhooks")]


# --- ISO 8601 durations (an A/B test's wait) ------------------------------------------------------------

DURATION_SITES = [("POST", "/campaigns"), ("PATCH", "/campaigns/{campaign_id}")]
JOURNEY_DURATION_SITES = [("PATCH", "/journeys/{journey_id}"), ("POST", "/journeys")]
"""Their four duration fields (waits, timeouts, re-entry, goal window) run the corpus in test_journeys.py."""


def test_every_duration_field_is_enrolled():
    described = sorted(
        (method.upper(), path)
        for path, methods in SPEC["paths"].items()
        for method, operation in methods.items()
        if "ISO 8601 duration" in json.dumps(operation.get("requestBody", {}))
    )
    assert described == sorted(DURATION_SITES + JOURNEY_DURATION_SITES)


@pytest.mark.parametrize("method, path", DURATION_SITES, ids=[f"{m} {p}" for m, p in DURATION_SITES])
def test_hostile_durations_are_a_422_naming_the_field_and_write_nothing(api, world, method, path):
    key, target = world.admin_key, path_for(path, world.ids)
    variants = [{"name": "A", "subject": "a", "text": "t"}, {"name": "B", "subject": "b", "text": "t"}]
    base = {"name": "n", "from": "news@example.com", "subject": "s", "text": "t", "segments": [world.ids["segment_id"]]}
    before = api.get(f"/campaigns/{world.ids['campaign_id']}", key=key).json
    for raw in HOSTILE_DURATIONS:
        test = {"test_percent": 10, "wait": raw, "metric": "opens"}
        body = (
            {**base, "variants": variants, "ab_test": test}
            if method == "POST"
            else {"variants": variants, "ab_test": test}
        )
        reply = api.request(method, target, key=key, json=body)
        assert reply.status == 422 and reply.error_field.startswith("ab_test.wait"), (raw, reply.text)
    assert api.get(f"/campaigns/{world.ids['campaign_id']}", key=key).json == before


def test_schedules_that_overflow_or_never_fire_are_refused_at_save_time(api, world):
    segment, trigger_id, journey_id = world.ids["segment_id"], world.ids["trigger_id"], world.ids["journey_id"]
    before = api.get("/triggers", key=world.admin_key).json, api.get("/journeys", key=world.admin_key).json
    steps = {"start": "t", "steps": {"t": {"type": "reward", "amount": 1, "next": None}}}
    for expression in HOSTILE_SCHEDULES:
        event = {"type": "schedule", "expression": expression, "segments": [segment]}
        trigger = {"name": "s", "event": event, "actions": [{"type": "reward", "amount": 1}]}
        journey = {"name": "s", "entry": event, **steps}
        for method, path, body, field in (
            ("POST", "/triggers", trigger, "event.expression"),
            ("PATCH", f"/triggers/{trigger_id}", trigger, "event.expression"),
            ("POST", "/journeys", journey, "entry.expression"),
            ("PATCH", f"/journeys/{journey_id}", journey, "entry.expression"),
        ):
            reply = api.request(method, path, key=world.admin_key, json=body)
            assert reply.status == 422, (expression, reply.text)
            assert reply.error_field == field, (expression, reply.text)
    after = api.get("/triggers", key=world.admin_key).json, api.get("/journeys", key=world.admin_key).json
    assert after == before


# --- IANA time zones (the tenant's setting, the contact's built-in attribute) ---------------------------------

TIME_ZONE_SITES = [
    ("PATCH", "/settings", "time_zone"),
    ("POST", "/contacts", "attributes.time_zone"),
    ("PATCH", "/contacts/{contact_id}", "attributes.time_zone"),
]


@pytest.mark.parametrize("method, template, field", TIME_ZONE_SITES, ids=[" ".join(s) for s in TIME_ZONE_SITES])
def test_hostile_time_zones_are_a_422_naming_the_field_and_write_nothing(api, world, method, template, field):
    base = {("PATCH", "/settings"): {}, **_base_bodies(world)}[(method, template)]
    path = path_for(template, world.ids)
    record = "/settings" if template == "/settings" else path_for("/contacts/{contact_id}", world.ids)
    before = api.get(record, key=world.admin_key).text
    for value in HOSTILE_TIME_ZONES:
        reply = api.request(method, path, key=world.admin_key, json=_with(base, field, value))
        assert (reply.status, reply.error_field) == (422, field), (method, template, value, reply.text)
    assert api.get(record, key=world.admin_key).text == before
    valid = api.request(method, path, key=world.admin_key, json=_with(base, field, "America/Sao_Paulo"))
    assert valid.status in (200, 201), valid.text


def test_hostile_time_zones_in_import_cells_are_row_errors_naming_the_field(api, app, world):
    values = [v for v in HOSTILE_TIME_ZONES if isinstance(v, str) and v.strip() and "\x00" not in v]
    text = "external_id,attributes.time_zone\n" + "".join(f"tz-{i},{v}\n" for i, v in enumerate(values))
    job = import_and_wait(api, app, world.admin_key, text, "text/csv")
    assert job["counts"].get("created", 0) == 0, job
    errors = api.get(f"/jobs/{job['id']}/errors?limit=500", key=world.admin_key).json["items"]
    assert len(errors) == len(values) and {e["field"] for e in errors} == {"attributes.time_zone"}, errors


# --- a value written before these rules ------------------------------------------------------------------


def test_a_stored_year_one_never_breaks_a_reader_and_the_record_can_still_be_deleted(api, app, new_tenant):
    tenant = new_tenant("Poisoned")
    key = tenant.admin_key
    assert api.post("/tags", key=key, json={"name": "vip"}).status == 201
    assert api.post("/contacts", key=key, json={"external_id": "p-1", "tags": ["vip"]}).status == 201
    drain(app)
    segment = make_segment(api, app, tenant, {"tag": "vip"}, "VIPs")
    window = {"starts_at": soon(-1), "ends_at": soon(7)}
    made = {}
    for kind, body in (
        ("announcement", {"title": "t", "body": "b", "segments": [segment], **window}),
        ("challenge", {"name": "c", "segments": [segment], **window, "goal": {"event_type": "purchase", "count": 1},
                       "reward": {"amount": 1}}),
    ):  # fmt: skip
        made[kind] = api.post(f"/{kind}s", key=key, json=body).json["id"]
        table = EngagementTable(tenant.id)
        stored = table.get(kind, made[kind])
        table.save(stored, stored.__class__(**{**stored.__dict__, "starts_at": "1-01-01T00:00:00.000Z"}))
    token = api.post("/contacts/p-1/portal-tokens", key=key).json["token"]
    for path, who in (
        ("/announcements", key), ("/challenges", key), (f"/announcements/{made['announcement']}", key),
        (f"/segments/{segment}/dependents", key), ("/portal/announcements", token), ("/portal/challenges", token),
    ):  # fmt: skip
        reply = api.get(path, key=who)
        assert reply.status == 200, (path, reply.text)
    listed = api.get("/announcements", key=key).json["items"][0]
    assert listed["active"] is False
    assert listed["problems"][0]["field"] == "starts_at"
    assert api.get("/portal/announcements", key=token).json["items"] == []
    assert api.delete(f"/segments/{segment}?confirm=true", key=key).status == 204
    assert api.delete(f"/announcements/{made['announcement']}", key=key).status == 204
    assert api.delete(f"/challenges/{made['challenge']}", key=key).status == 204
