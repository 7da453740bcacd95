"""The OpenAPI document describes exactly the routes the app serves."""

from openapi_spec_validator import validate

from chalicelib.http.api import REGISTRY
from chalicelib.http.routes import console


def test_every_route_is_described_and_every_description_is_a_route(api, app):
    spec = api.get("/openapi.json").json
    served = {
        (path, method.lower())
        for path, methods in app.routes.items()
        for method in methods
        if path not in console.ROUTES  # the console's page and files: not API operations
    }
    described = {(path, method) for path, methods in spec["paths"].items() for method in methods}
    heads = {(path, "head") for path, method in described if method == "get"}
    assert served == described | heads  # every GET also answers HEAD (headers only), left out of the document
    assert len(REGISTRY) == len(described)


def test_document_is_valid_openapi_3_1(api):
    spec = api.get("/openapi.json").json
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_every_operation_says_what_it_does_and_who_may_call_it(api):
    spec = api.get("/openapi.json").json
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert operation["summary"].strip(), (path, method)
            assert operation["x-access"] in {"public", "operator", "viewer", "admin", "portal"}
            assert bool(operation["security"]) == (operation["x-access"] != "public"), (path, method)
            assert any(status.startswith("2") for status in operation["responses"]), (path, method)
            if operation["x-access"] != "public":
                assert {"401", "403"} <= set(operation["responses"]), (path, method)
