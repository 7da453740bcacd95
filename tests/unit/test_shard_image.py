"""Shard images: built, stored as bytes, patched and concatenated, they answer every criteria exactly as the
contacts they were made from (the golden segments against DuckDB, and generated contacts against Population)."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.golden import GOLDEN, TYPES, duckdb_oracle, generate, sql_for
from chalicelib.domain.contacts import Contact, contact_id_for
from chalicelib.domain.criteria import Vocabulary, check_criteria
from chalicelib.domain.engine import compile_criteria
from chalicelib.domain.population import Population
from chalicelib.domain.shard_image import ImagePopulation, ShardImage
from tests.unit.test_golden_engine import LIBRARY

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    people = generate(2_000, NOW)
    database = duckdb_oracle(people, tmp_path_factory.mktemp("golden-image"))
    events = {p.id: p.events for p in people}
    whole = ShardImage.from_bytes(ShardImage.build(people, events).to_bytes())
    chooser = random.Random(7)
    changed = chooser.sample(people, 600)  # patched in from a second image, as dirty contacts are
    stale = ShardImage.build(people[:1200], {})  # an older image: no events, missing the last contacts
    patched = stale.patched(
        [p.ordinal for p in people[:1200]] + [p.ordinal for p in changed],
        ShardImage.build(people, events).take(np.arange(len(people))),
    )
    pieces = ShardImage.concat([ShardImage.build(people[i::3], events) for i in range(3)])
    return people, database, {"stored": whole, "patched": patched, "concatenated": pieces}


@pytest.mark.parametrize("golden", GOLDEN, ids=[g.name for g in GOLDEN])
def test_every_image_finds_exactly_what_sql_finds(world, golden):
    people, database, images = world
    compiled = compile_criteria(LIBRARY[golden.name], TYPES, LIBRARY.get)
    by_ordinal = {p.ordinal: p.id for p in people}
    expected = {row[0] for row in database.execute(sql_for(golden, NOW)).fetchall()}
    for name, image in images.items():
        population = ImagePopulation(image)
        found = {by_ordinal[int(o)] for o in image.ordinals[compiled.evaluate(population, NOW)]}
        assert found == expected, name


def test_rows_stay_in_ordinal_order_and_patching_drops_deleted_contacts(world):
    people, _, images = world
    for image in images.values():
        assert np.array_equal(image.ordinals, np.sort([p.ordinal for p in people]))
    gone = [people[0].ordinal, people[5].ordinal]
    shrunk = images["stored"].patched(gone, ShardImage.empty())
    assert shrunk.size == len(people) - 2
    assert not np.isin(gone, shrunk.ordinals).any()
    assert sum(len(c.at) for c in shrunk.events.values()) == sum(len(p.events) for p in people if p.ordinal not in gone)


def test_only_an_image_this_code_wrote_is_read_and_never_a_pickle():
    image = ShardImage.build([Contact(id=contact_id_for(1), ordinal=1, tags=frozenset({"a"}))])
    data = image.to_bytes()
    assert ShardImage.from_bytes(data).tag_names == ["a"]
    foreign, pickled = io.BytesIO(), io.BytesIO()
    np.savez(foreign, header=np.frombuffer(b'{"format": "something-else/1"}', dtype=np.uint8))
    np.savez(pickled, header=np.array([{"format": "segments-shard-image/1"}], dtype=object))
    for damaged in (data[: len(data) // 2], b"not a zip", foreign.getvalue(), pickled.getvalue()):
        with pytest.raises(ValueError):
            ShardImage.from_bytes(damaged)


# --- generated contacts: anything a contact can hold --------------------------------------------------------

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-3, 3, allow_nan=False),
    st.sampled_from(["a", "A", "b", "Toronto", "toronto", "2026-11-01T00:00:00Z", "not a date", ""]),
    st.lists(st.sampled_from(["a", "A", "b", 1]), max_size=3),
)
contacts = st.lists(
    st.builds(
        lambda ordinal, tags, group, attributes, events: (ordinal, tags, group, attributes, events),
        st.integers(1, 60),
        st.frozensets(st.sampled_from(["vip", "local", "x"]), max_size=3),
        st.sampled_from([None, "g1", "g2"]),
        st.dictionaries(st.sampled_from(["n", "s", "flag", "list", "when"]), values, max_size=4),
        st.lists(
            st.tuples(
                st.sampled_from(["purchase", "visit"]),
                st.integers(0, 40),
                values,
                st.dictionaries(st.sampled_from(["category", "amount", "price"]), values, max_size=2),
            ),
            max_size=3,
        ),
    ),
    max_size=25,
    unique_by=lambda row: row[0],
)

CRITERIA = [
    {"tag": "vip"},
    {"group": "g1"},
    {"attr": "n", "op": "gt", "value": 0},
    {"attr": "n", "op": "exists"},
    {"attr": "s", "op": "eq", "value": "toronto"},
    {"attr": "s", "op": "starts_with", "value": "to"},
    {"attr": "flag", "op": "eq", "value": True},
    {"attr": "list", "op": "contains", "value": "a"},
    {"attr": "list", "op": "exists"},
    {"attr": "when", "op": "within_last", "value": "60d"},
    {"attr": "email", "op": "exists"},
    {"event": "purchase"},
    {"event": "purchase", "within": "30d", "agg": "sum", "field": "amount", "op": "gte", "value": 1},
    {"event": "visit", "where": [{"prop": "category", "op": "eq", "value": "a"}]},
    {
        "event": "purchase",
        "agg": "share",
        "op": "gte",
        "value": 0.5,
        "where": [{"prop": "price", "op": "lt", "value": 1}],
    },
    {"event": "visit", "agg": "max", "field": "price", "op": "gt", "value": 0},
    {"not": {"any": [{"tag": "x"}, {"attr": "flag", "op": "eq", "value": False}]}},
]
ATTRIBUTE_TYPES = {"n": "number", "s": "string", "flag": "boolean", "list": "string_list", "when": "datetime"}
VOCABULARY = Vocabulary(
    tags=frozenset({"vip", "local", "x"}),
    groups=frozenset({"g1", "g2"}),
    attributes=ATTRIBUTE_TYPES,
    segments={},
    tag_limit=10,
)


def _world(rows):
    people, events = [], {}
    for ordinal, tags, group, attributes, own in rows:
        contact = Contact(
            id=contact_id_for(ordinal),
            ordinal=ordinal,
            tags=tags,
            group=group,
            attributes=attributes,
            email=f"p{ordinal}@example.com" if ordinal % 2 else None,
        )
        people.append(contact)
        events[contact.id] = [
            {
                "id": f"e{i}",
                "type": kind,
                "at": f"2026-11-{1 + day % 28:02d}T00:00:00Z" if day < 30 else "garbled",
                "amount": amount,
                "properties": properties,
            }
            for i, (kind, day, amount, properties) in enumerate(own)
        ]
    return people, events


def _matches(population, criteria):
    checked = check_criteria(criteria, VOCABULARY).criteria
    compiled = compile_criteria(checked, ATTRIBUTE_TYPES, {}.get)
    return set(population.ordinals[compiled.evaluate(population, NOW)].tolist())


@settings(max_examples=60, deadline=None)
@given(contacts, contacts, st.randoms(use_true_random=False))
def test_a_patched_image_matches_the_contacts_it_stands_for(first, second, chooser):
    """An image of the first contacts, patched with the contacts that changed (the second set, with some
    of the first deleted), evaluates like a Population of the contacts as they now are."""
    old_people, old_events = _world(first)
    new_rows = {row[0]: row for row in first if chooser.random() < 0.6} | {row[0]: row for row in second}
    people, events = _world(list(new_rows.values()))
    changed = {row[0] for row in second} | ({row[0] for row in first} - set(new_rows))
    fresh = [p for p in people if p.ordinal in changed]
    image = ShardImage.from_bytes(ShardImage.build(old_people, old_events).to_bytes())
    patched = image.patched(changed, ShardImage.build(fresh, events))
    truth = Population(people, events)
    for criteria in CRITERIA:
        assert _matches(ImagePopulation(patched), criteria) == _matches(truth, criteria), criteria
