"""Property-based run of the whole API from its own OpenAPI document: no input may cause a 5xx.

One pytest test per operation (explicit parametrisation, so pytest-xdist runs
every operation), each calling the API with the key its ``x-access`` asks for
(so requests get past authentication and exercise validation and storage) for a
bounded number of generated examples. Totals are written to build/schemathesis.json.
"""

import json
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from app import app as chalice_app
from chalicelib.config import LOCAL_OPERATOR_KEY
from tests.support.client import ApiClient
from tests.support.wsgi import wsgi_app

REPORT = Path(__file__).resolve().parents[2] / "build" / "schemathesis.json"
EXAMPLES_PER_OPERATION = 40
_client = ApiClient(chalice_app)
schema = schemathesis.openapi.from_wsgi("/openapi.json", wsgi_app(_client.gateway))
OPERATIONS = {result.ok().label: result.ok() for result in schema.get_all_operations()}
tally: Counter = Counter()


@pytest.fixture(scope="module")
def keys():
    created = _client.post("/tenants", key=LOCAL_OPERATOR_KEY, json={"name": "fuzz"}).json
    _client.patch(f"/tenants/{created['id']}", key=LOCAL_OPERATOR_KEY, json={"features": {"segments": True}})
    _client.patch("/settings", key=created["admin_key"], json={"requests_per_second": 1000})
    yield {"operator": LOCAL_OPERATOR_KEY, "admin": created["admin_key"], "viewer": created["admin_key"]}
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps({"operations": len(OPERATIONS), **tally}, indent=2))


NOT_JSON_OPERATIONS = {"GET /openapi.json"}  # schemathesis skips the schema's own URL
"""Served routes that are not fuzzed, by name: every GET route also answers HEAD (headers, no body)."""


def test_every_route_is_fuzzed():
    served = {f"{method} {path}" for path, methods in chalice_app.routes.items() for method in methods}
    heads = {label for label in served if label.startswith("HEAD ")}
    assert heads == {label.replace("GET ", "HEAD ", 1) for label in served if label.startswith("GET ")}
    assert set(OPERATIONS) == served - NOT_JSON_OPERATIONS - heads


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_input_causes_a_server_error(label, keys):
    operation = OPERATIONS[label]
    access = operation.definition.raw.get("x-access")
    headers = {"Authorization": f"Bearer {keys[access]}"} if access in keys else {}

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call(headers=headers)
        tally["requests"] += 1
        tally[f"status_{response.status_code // 100}xx"] += 1
        case.validate_response(response, checks=[not_a_server_error])

    check()
