"""The customer overview (services/overview.py) on in-memory ports: facet counts over every contact, each
value with the criterion that selects it."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import ValidationFailed
from chalicelib.services import contacts, overview
from chalicelib.services.context import TenantContext
from tests.support.fakes import InMemoryCatalog, fake_context


@pytest.fixture
def ctx() -> TenantContext:
    ctx = fake_context("ten_1", InMemoryCatalog(tags={"vip", "local"}, groups={"grp_1"}))
    people = [
        {"tags": ["vip", "local"], "group": "grp_1", "attributes": {"city": "Oslo", "visits": 3}},
        {"tags": ["vip"], "attributes": {"city": "Oslo"}},
        {"tags": [], "group": "grp_1", "attributes": {"city": "Rome"}},
    ]
    for n, person in enumerate(people):
        contacts.create_contact(ctx, {"external_id": f"p-{n}", **person})
    return ctx


def counts(facet: dict) -> dict:
    return {str(v["value"]): v["count"] for v in facet["values"]}


def test_facets_count_every_contact_by_tag_group_and_attribute(ctx):
    seen = overview.overview(ctx, {"facets": "tags,group,attributes.city"})
    assert seen["total"] == 3
    assert counts(seen["facets"]["tags"]) == {"vip": 2, "local": 1}
    assert counts(seen["facets"]["attributes.city"]) == {"Oslo": 2, "Rome": 1}
    (resellers,) = [v for v in seen["facets"]["group"]["values"] if v["value"] == "grp_1"]
    assert resellers["count"] == 2 and resellers["name"] == "grp_1"
    assert resellers["criteria"] == {"group": "grp_1"}


def test_unknown_or_uncountable_facets_are_refused_by_name(ctx):
    eleven = ",".join(["tags", "group", *(f"attributes.city{i}" for i in range(9))])
    for facets in ("colour", "attributes.nothing", "", eleven):
        with pytest.raises(ValidationFailed) as refused:
            overview.overview(ctx, {"facets": facets})
        assert refused.value.details["field"] == "facets"
    with pytest.raises(ValidationFailed):
        overview.overview(ctx, {"facets": "tags", "top": "0"})
