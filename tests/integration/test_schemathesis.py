"""Property-based run of the whole API from its own OpenAPI document.

One pytest test per operation (explicit parametrisation, so pytest-xdist spreads them), each calling the API
with the key its ``x-access`` names — the viewer key where the contract says viewer — against a tenant with one
of everything (tests/support/world.py), so path ids often exist:

- schema-conforming data (positive): no 5xx, a documented status code, a documented content type, and a body
  that conforms to the documented response schema;
- schema-violating data (negative): no 5xx, and refused (4xx), never accepted.

Every other role is checked per operation in tests/integration/test_roles.py. Totals (requests, failures by
check) are written to build/schemathesis.json.
"""

import json
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app import app as chalice_app
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
NOT_JSON_OPERATIONS = {"GET /openapi.json"}  # schemathesis skips the schema's own URL
"""Served routes that are not fuzzed, by name: every GET route also answers HEAD (headers, no body)."""
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
        response = case.call(headers=headers)
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
