"""Property-based run of the whole API from its own OpenAPI document.

One pytest test per operation (explicit parametrisation, so pytest-xdist spreads them), each calling the API
with the key its ``x-access`` names — the viewer key where the contract says viewer — against a tenant with one
of everything (tests/support/world.py), so path ids often exist:

- schema-conforming data (positive): no 5xx, a documented status code, a documented content type, and a body
  that conforms to the documented response schema;
- schema-violating data (negative): no 5xx, and refused (4xx), never accepted.

A stateful pass then follows created ids into reads, updates and deletes (links inferred from the document).
Every other role is checked per operation in tests/integration/test_roles.py. Totals (requests, failures by
check) are written to build/schemathesis.json.
"""

import json
import threading
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from chalice.config import Config
from chalice.local import LocalDevServer
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.engine import events, from_schema
from schemathesis.engine.run import PhaseName
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app import app as chalice_app
from chalicelib.http.routes import console
from infra.local.gateway import EnvelopeRequestHandler
from tests.support.client import ApiClient
from tests.support.world import build_world, key_for
from tests.support.wsgi import wsgi_app

REPORT = Path(__file__).resolve().parents[2] / "build" / "schemathesis.json"
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}
CHECKS = {
    GenerationMode.POSITIVE: (not_a_server_error, status_code_conformance, content_type_conformance,
                              response_schema_conformance),
    GenerationMode.NEGATIVE: (not_a_server_error, negative_data_rejection),
}  # fmt: skip
_client = ApiClient(chalice_app)
schema = schemathesis.openapi.from_wsgi("/openapi.json", wsgi_app(_client.gateway))
OPERATIONS = {result.ok().label: result.ok() for result in schema.get_all_operations()}
NOT_JSON_OPERATIONS = {"GET /openapi.json", *(f"GET {path}" for path in console.ROUTES)}
"""Served routes that are not fuzzed, by name: the schema's own URL (schemathesis skips it) and the console's
page and files (not API operations). Every GET route also answers HEAD (headers, no body)."""
tally: Counter = Counter()


@pytest.fixture(scope="module")
def world(app):
    built = build_world(_client, app)
    yield built
    REPORT.parent.mkdir(exist_ok=True)
    existing = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    merged = Counter(existing) + tally
    REPORT.write_text(json.dumps({**merged, "operations": len(OPERATIONS)}, indent=2, sort_keys=True))


def test_every_route_is_fuzzed():
    served = {f"{method} {path}" for path, methods in chalice_app.routes.items() for method in methods}
    heads = {label for label in served if label.startswith("HEAD ")}
    assert heads == {label.replace("GET ", "HEAD ", 1) for label in served if label.startswith("GET ")}
    assert set(OPERATIONS) == served - NOT_JSON_OPERATIONS - heads


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda mode: mode.value)
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_the_api_answers_as_its_contract_says(label, mode, world):
    operation = OPERATIONS[label]
    key = key_for(world, operation.definition.raw.get("x-access"))
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES[mode], deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case):
        # a negative case may be negative *because* it dropped the Authorization header: sending the key
        # anyway would turn it into a valid request and fail the check for the harness's own doing
        dropped_key = mode is GenerationMode.NEGATIVE and "Authorization" not in (case.headers or {})
        response = case.call(headers={} if dropped_key else headers)
        tally["requests"] += 1
        tally[f"{mode.value}_status_{response.status_code // 100}xx"] += 1
        try:
            case.validate_response(response, checks=list(CHECKS[mode]))
        except BaseException:
            tally[f"failed_{mode.value}"] += 1
            raise

    try:
        check()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, "positive data can always be made"  # nothing to violate here


def test_a_stateful_pass_follows_created_ids_into_reads_updates_and_deletes(app, world):
    """Schemathesis' own engine infers the links between operations from the document (an id a create answers
    with feeds every route that takes it) and runs sequences of calls, so ids that exist are fuzzed too: each
    step checked for no 5xx, documented statuses, content types and response schemas, a deleted resource
    staying gone (use_after_free) and a created one being readable (ensure_resource_availability). It talks
    HTTP to the app served on a loopback port (its in-process WSGI path cannot run stateful phases here)."""
    server = LocalDevServer(app, Config.create(chalice_stage="local", lambda_timeout=30), "127.0.0.1", 0,
                            handler_cls=EnvelopeRequestHandler)  # fmt: skip
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    try:
        port = server.server.server_address[1]
        stateful = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")

        @stateful.auth()
        class KeyOfTheContract:
            def get(self, case, context):
                return key_for(world, case.operation.definition.raw.get("x-access"))

            def set(self, case, key, context):
                if key:
                    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}

        config = stateful.config
        for phase in ("examples", "coverage", "fuzzing"):
            getattr(config.phases, phase).enabled = False
        config.generation.max_examples = 100
        config.checks.positive_data_acceptance.enabled = False  # a well-formed but unknown cursor or id is a 4xx
        outcomes: Counter = Counter()
        failures: list[str] = []
        requests = 0
        runs = 0
        while requests < 100 and runs < 5:  # the engine draws fewer sequences on a loaded machine: run it again
            runs += 1
            requests += _run_stateful(stateful, outcomes, failures)
        tally["stateful_requests"] += requests
        tally["stateful_scenarios"] = sum(outcomes.values())
        assert failures == []
        assert outcomes["success"] >= 10 and requests >= 100, (outcomes, requests)
    finally:
        server.server.shutdown()


def _run_stateful(stateful, outcomes: Counter, failures: list[str]) -> int:
    """One run of the engine's stateful phase; its scenarios' outcomes and failed checks are added to the
    arguments; returns how many requests it made."""
    requests = 0
    for event in from_schema(stateful).execute():
        if isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"error: {event.info}"[:500])
        if isinstance(event, events.ScenarioFinished) and event.phase == PhaseName.STATEFUL_TESTING:
            outcomes[str(event.status)] += 1
            requests += len(event.recorder.cases)
            for case_id, checks in event.recorder.checks.items():
                failures += [
                    f"{check.name} on {event.recorder.cases[case_id].value.operation.label}: "
                    f"{check.failure_info.failure if check.failure_info else ''}"[:500]
                    for check in checks
                    if str(check.status) == "failure"
                ]
    return requests
