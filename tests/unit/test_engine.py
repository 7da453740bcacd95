"""The compiled engine against the reference interpreter, the seed's examples, and logical rewrites."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.criteria import Vocabulary, check_criteria
from chalicelib.domain.engine import BrokenReference, compile_criteria
from chalicelib.domain.population import Population
from tests.support.reference import matches

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TYPES = {
    "country": "string",
    "city": "string",
    "lifetime_value": "number",
    "signup_at": "datetime",
    "newsletter": "boolean",
    "interests": "string_list",
}
TAGS = ("vip", "new", "family", "partner", "gold")
GROUPS = ("grp_a", "grp_b")


@dataclass(frozen=True)
class Person:
    id: str
    ordinal: int
    tags: frozenset[str] = frozenset()
    group: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    external_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


def ago(days: float) -> str:
    return to_rfc3339(NOW - timedelta(days=days))


def run_both(criteria, people, events, segments=None, now=NOW):
    resolve = (segments or {}).get
    compiled = compile_criteria(criteria, TYPES, resolve)
    engine = compiled.evaluate(Population(people, events), now).tolist()
    reference = [matches(criteria, p, events.get(p.id, []), now, TYPES, resolve) for p in people]
    return engine, reference


# --- the seed's examples, literally ---------------------------------------------------------------------

SHOPPERS = [
    Person("ctc_a", 1, frozenset({"family"}), attributes={"city": "Toronto"}),
    Person("ctc_b", 2, attributes={"city": "toronto"}),
    Person("ctc_c", 3, attributes={"city": "Montreal"}),
    Person("ctc_d", 4),
]
PURCHASES = {
    "ctc_a": [
        {"type": "purchase", "at": ago(2), "amount": 80, "properties": {"category": "family", "discounted": True}},
        {"type": "purchase", "at": ago(4), "amount": 40, "properties": {"category": "family", "discounted": True}},
        {"type": "purchase", "at": ago(30), "amount": 25, "properties": {"category": "adult", "discounted": False}},
    ],
    "ctc_b": [
        {"type": "purchase", "at": ago(70), "amount": 500, "properties": {"category": "family", "discounted": True}},
        {"type": "visit", "at": ago(1)},
    ],
    "ctc_c": [{"type": "purchase", "at": ago(1), "amount": 101, "properties": {"category": "adult"}}],
}

SEED_EXAMPLES = {
    "purchased in the last two months": ({"event": "purchase", "within": "60d"}, [True, False, True, False]),
    "spent over $100 this week": (
        {"event": "purchase", "within": "7d", "agg": "sum", "field": "amount", "op": "gt", "value": 100},
        [True, False, True, False],
    ),
    "local customers who like family programs and usually buy discounted tickets": (
        {
            "all": [
                {"attr": "city", "op": "eq", "value": "Toronto"},
                {"event": "purchase", "where": [{"prop": "category", "op": "eq", "value": "family"}]},
                {
                    "event": "purchase",
                    "agg": "share",
                    "op": "gt",
                    "value": 0.5,
                    "where": [{"prop": "discounted", "op": "eq", "value": True}],
                },
            ]
        },
        [True, True, False, False],
    ),
}


@pytest.mark.parametrize("name", SEED_EXAMPLES)
def test_seed_examples_mean_what_they_say(name):
    criteria, expected = SEED_EXAMPLES[name]
    checked = check_criteria(criteria, vocabulary())
    engine, reference = run_both(checked.criteria, SHOPPERS, PURCHASES)
    assert engine == expected
    assert reference == expected


def test_ten_tags_with_and_or_as_partnerstack_allows():
    criteria = {
        "any": [
            {"all": [{"tag": "t0"}, {"tag": "t1"}, {"tag": "t2"}]},
            {"all": [{"tag": "t3"}, {"not": {"tag": "t4"}}]},
            {"any": [{"tag": "t5"}, {"tag": "t6"}, {"tag": "t7"}, {"tag": "t8"}, {"tag": "t9"}]},
        ]
    }
    tags = frozenset(f"t{i}" for i in range(10))
    checked = check_criteria(criteria, vocabulary(tags=tags))
    people = [
        Person("p1", 1, frozenset({"t0", "t1", "t2"})),
        Person("p2", 2, frozenset({"t0", "t1"})),
        Person("p3", 3, frozenset({"t3"})),
        Person("p4", 4, frozenset({"t3", "t4"})),
        Person("p5", 5, frozenset({"t9"})),
        Person("p6", 6),
    ]
    assert run_both(checked.criteria, people, {})[0] == [True, False, True, False, True, False]


def test_windows_follow_the_injected_clock():
    criteria = check_criteria({"event": "purchase", "within": "60d"}, vocabulary()).criteria
    person = [Person("ctc_a", 1)]
    events = {"ctc_a": [{"type": "purchase", "at": ago(50)}]}
    assert run_both(criteria, person, events)[0] == [True]
    assert run_both(criteria, person, events, now=NOW + timedelta(days=11)) == ([False], [False])


def test_within_last_and_older_than_on_dates():
    people = [
        Person("a", 1, attributes={"signup_at": ago(3)}),
        Person("b", 2, attributes={"signup_at": ago(40)}),
        Person("c", 3, attributes={"signup_at": ago(-2)}),  # in the future
        Person("d", 4),
    ]
    recent = {"attr": "signup_at", "op": "within_last", "value": "30d"}
    old = {"attr": "signup_at", "op": "older_than", "value": "4w"}
    assert run_both(recent, people, {}) == ([True, False, False, False],) * 2
    assert run_both(old, people, {}) == ([False, True, False, False],) * 2


def test_missing_values_match_only_the_negative_operators():
    people = [Person("a", 1, attributes={"country": "CA"}), Person("b", 2)]
    for op, expected in [("eq", [True, False]), ("ne", [False, True]), ("exists", [True, False])]:
        node = {"attr": "country", "op": op} | ({} if op == "exists" else {"value": "ca"})
        assert run_both(node, people, {}) == (expected, expected)
    assert run_both({"attr": "country", "op": "not_in", "value": ["US"]}, people, {})[0] == [True, True]


def test_aggregates_of_nothing():
    people = [Person("a", 1), Person("b", 2)]
    events = {"b": [{"type": "purchase", "at": ago(1), "amount": 10}]}
    cases = [
        ({"event": "purchase", "agg": "count", "op": "eq", "value": 0}, [True, False]),
        ({"event": "purchase", "agg": "sum", "field": "amount", "op": "lt", "value": 5}, [True, False]),
        ({"event": "purchase", "agg": "avg", "field": "amount", "op": "lt", "value": 50}, [False, True]),
        ({"event": "purchase", "agg": "min", "field": "amount", "op": "ne", "value": 3}, [False, True]),
    ]
    for criteria, expected in cases:
        assert run_both(criteria, people, events) == (expected, expected), criteria


def test_segment_references_compile_in_place_once():
    segments = {"seg_local": {"attr": "city", "op": "eq", "value": "toronto"}, "seg_vip": {"tag": "family"}}
    mixer = {"all": [{"segment": "seg_local"}, {"segment": "seg_vip"}]}
    assert run_both(mixer, SHOPPERS, PURCHASES, segments) == ([True, False, False, False],) * 2
    with pytest.raises(BrokenReference) as missing:
        compile_criteria({"segment": "seg_gone"}, TYPES, segments.get)
    assert missing.value.segment_id == "seg_gone"
    looping = {"seg_x": {"segment": "seg_y"}, "seg_y": {"segment": "seg_x"}}
    with pytest.raises(BrokenReference):
        compile_criteria({"segment": "seg_x"}, TYPES, looping.get)


def test_empty_population():
    compiled = compile_criteria({"tag": "vip"}, TYPES)
    assert compiled.members(Population([]), NOW).tolist() == []


# --- property tests: the compiled engine agrees with the reference ----------------------------------------

texts = st.sampled_from(["Toronto", "toronto", "Montreal", "CA", "ca", "US", "fam", "Family", ""])
numbers = st.integers(-4, 400).map(lambda n: n / 2)
days = st.floats(min_value=-1.5, max_value=120, allow_nan=False)
dates = days.map(ago)
durations = st.sampled_from(["1h", "36h", "1d", "7d", "30d", "60d", "2w", "400d"])
values_by_type = {
    "string": texts,
    "number": numbers,
    "datetime": dates,
    "boolean": st.booleans(),
    "string_list": st.lists(texts, max_size=3),
}
wrong_type = st.one_of(st.integers(), st.text(max_size=3), st.booleans(), st.none())


@st.composite
def people_and_events(draw):
    people, events = [], {}
    for ordinal in range(1, draw(st.integers(0, 10)) + 1):
        attributes = {}
        for name, kind in TYPES.items():
            choice = draw(st.sampled_from(["missing", "typed", "typed", "wrong"]))
            if choice == "typed":
                attributes[name] = draw(values_by_type[kind])
            elif choice == "wrong":
                attributes[name] = draw(wrong_type)
        person = Person(
            f"ctc_{ordinal}",
            ordinal,
            frozenset(draw(st.lists(st.sampled_from(TAGS), max_size=3))),
            draw(st.sampled_from([None, *GROUPS])),
            attributes,
            email=draw(st.sampled_from([None, "Ann@Example.com", "bob@shop.ca"])),
            created_at=draw(dates),
        )
        people.append(person)
        events[person.id] = [
            {
                "type": draw(st.sampled_from(["purchase", "visit"])),
                "at": draw(dates),
                "amount": draw(st.one_of(st.none(), numbers)),
                "properties": draw(
                    st.dictionaries(
                        st.sampled_from(["category", "discounted", "seats"]),
                        st.one_of(texts, numbers, st.booleans()),
                        max_size=3,
                    )
                ),
            }
            for _ in range(draw(st.integers(0, 5)))
        ]
    return people, events


OPS = {
    "string": ["eq", "ne", "in", "not_in", "contains", "starts_with", "exists", "not_exists"],
    "number": ["eq", "ne", "lt", "lte", "gt", "gte", "between", "in", "not_in", "exists", "not_exists"],
    "boolean": ["eq", "ne", "exists", "not_exists"],
    "datetime": ["eq", "ne", "lt", "lte", "gt", "gte", "between", "exists", "not_exists", "within_last", "older_than"],
    "string_list": ["contains", "in", "not_in", "exists", "not_exists"],
}
FIELDS = {**TYPES, "email": "string", "created_at": "datetime"}


@st.composite
def attribute_nodes(draw):
    name = draw(st.sampled_from(sorted(FIELDS)))
    kind = FIELDS[name]
    op = draw(st.sampled_from(OPS[kind]))
    node = {"attr": name, "op": op}
    scalar = values_by_type["string" if kind == "string_list" else kind]
    if op in ("within_last", "older_than"):
        node["value"] = draw(durations)
    elif op == "between":
        node["value"] = sorted(draw(st.lists(numbers if kind == "number" else days, min_size=2, max_size=2)))
        if kind == "datetime":
            node["value"] = [ago(d) for d in reversed(node["value"])]
    elif op in ("in", "not_in"):
        node["value"] = draw(st.lists(scalar, min_size=1, max_size=3))
    elif op not in ("exists", "not_exists"):
        node["value"] = draw(scalar)
    return node


@st.composite
def where_filters(draw):
    prop = draw(st.sampled_from(["category", "discounted", "seats", "amount"]))
    op = draw(st.sampled_from(["eq", "ne", "lt", "gte", "between", "in", "not_in", "contains", "exists", "not_exists"]))
    if prop == "amount" and op == "contains":
        op = "gte"
    rule = {"prop": prop, "op": op}
    scalar = numbers if prop == "amount" else st.one_of(texts, numbers, st.booleans())
    if op in ("lt", "gte"):
        rule["value"] = draw(numbers)
    elif op == "between":
        rule["value"] = sorted(draw(st.lists(numbers, min_size=2, max_size=2)))
    elif op in ("in", "not_in"):
        rule["value"] = draw(st.lists(scalar, min_size=1, max_size=3))
    elif op == "contains":
        rule["value"] = draw(texts)
    elif op in ("eq", "ne"):
        rule["value"] = draw(scalar)
    return rule


@st.composite
def event_nodes(draw):
    agg = draw(st.sampled_from(["count", "sum", "avg", "min", "max", "share"]))
    node = {"event": draw(st.sampled_from(["purchase", "visit"])), "agg": agg}
    if draw(st.booleans()):
        node["within"] = draw(durations)
    if agg in ("sum", "avg", "min", "max"):
        node["field"] = draw(st.sampled_from(["amount", "seats"]))
    node["op"] = draw(st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte", "between"]))
    bound = st.sampled_from([0, 0.25, 0.5, 1]) if agg == "share" else numbers
    if node["op"] == "between":
        node["value"] = sorted(draw(st.lists(bound, min_size=2, max_size=2)))
    else:
        node["value"] = draw(bound)
    if agg == "share" or draw(st.booleans()):
        node["where"] = draw(st.lists(where_filters(), min_size=1, max_size=2))
    return node


leaves = st.one_of(
    st.sampled_from(TAGS).map(lambda t: {"tag": t}),
    st.sampled_from(GROUPS).map(lambda g: {"group": g}),
    attribute_nodes(),
    event_nodes(),
)


def trees(max_leaves=12):
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
            st.lists(children, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
            children.map(lambda x: {"not": x}),
        ),
        max_leaves=max_leaves,
    )


def vocabulary(**overrides) -> Vocabulary:
    defaults = dict(tags=frozenset(TAGS), groups=frozenset(GROUPS), attributes=TYPES, segments={}, tag_limit=10)
    return Vocabulary(**(defaults | overrides))


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(trees(), people_and_events())
def test_compiled_engine_agrees_with_the_reference(criteria, population):
    people, events = population
    engine, reference = run_both(criteria, people, events)
    assert engine == reference


@PROPERTY_SETTINGS
@given(trees(max_leaves=6), people_and_events())
def test_generated_criteria_are_valid_and_already_canonical(criteria, population):
    checked = check_criteria(criteria, vocabulary(attributes=TYPES))
    people, events = population
    assert run_both(checked.criteria, people, events)[0] == run_both(criteria, people, events)[0]


@PROPERTY_SETTINGS
@given(trees(max_leaves=5), trees(max_leaves=5), people_and_events())
def test_de_morgan_and_double_negation_preserve_results(a, b, population):
    people, events = population

    def result(criteria):
        return run_both(criteria, people, events)[0]

    assert result({"not": {"all": [a, b]}}) == result({"any": [{"not": a}, {"not": b}]})
    assert result({"not": {"any": [a, b]}}) == result({"all": [{"not": a}, {"not": b}]})
    assert result({"not": {"not": a}}) == result(a)
    assert result({"all": [a, {"not": a}]}) == [False] * len(people)


@PROPERTY_SETTINGS
@given(attribute_nodes(), people_and_events())
def test_negative_operators_are_exact_negations(node, population):
    positive = {"ne": "eq", "not_in": "in", "not_exists": "exists"}
    people, events = population
    if node["op"] in positive:
        flipped = {**node, "op": positive[node["op"]]}
        assert run_both(node, people, events)[0] == run_both({"not": flipped}, people, events)[0]


@PROPERTY_SETTINGS
@given(
    st.dictionaries(st.sampled_from(["seg_1", "seg_2", "seg_3"]), trees(max_leaves=4), min_size=3),
    trees(4),
    people_and_events(),
)
def test_mixer_segments_agree_with_the_reference(library, extra, population):
    # seg_3 may use seg_1 and seg_2; the mixer uses all three (no cycles by construction)
    library = {**library, "seg_3": {"any": [library["seg_3"], {"segment": "seg_1"}]}}
    mixer = {"all": [{"any": [{"segment": "seg_2"}, {"segment": "seg_3"}]}, extra]}
    people, events = population
    engine, reference = run_both(mixer, people, events, library)
    assert engine == reference
