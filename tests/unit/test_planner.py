"""The tag-index planner: exact for tag-only criteria, a superset of the members for the rest."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain import planner
from chalicelib.domain.engine import compile_criteria
from chalicelib.domain.membership import Target, event_id, transitions
from chalicelib.domain.population import Population
from tests.unit.test_engine import NOW, PROPERTY_SETTINGS, TAGS, TYPES, people_and_events, trees

tag_trees = st.recursive(
    st.sampled_from(TAGS).map(lambda t: {"tag": t}),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
        children.map(lambda x: {"not": x}),
    ),
    max_leaves=10,
)


def index_of(people) -> dict[str, np.ndarray]:
    postings = {tag: np.array(sorted(p.ordinal for p in people if tag in p.tags), dtype=np.int64) for tag in TAGS}
    postings[planner.EVERYONE] = np.array(sorted(p.ordinal for p in people), dtype=np.int64)
    return postings


def engine_members(criteria, people, events, library=None) -> set[int]:
    compiled = compile_criteria(criteria, TYPES, (library or {}).get)
    mask = compiled.evaluate(Population(people, events), NOW)
    return {p.ordinal for p, hit in zip(people, mask.tolist(), strict=True) if hit}


@PROPERTY_SETTINGS
@given(tag_trees, people_and_events())
def test_tag_only_criteria_are_answered_by_the_index_exactly(criteria, population):
    people, events = population
    formula = planner.index_formula(criteria, {}.get)
    assert formula == criteria
    postings = index_of(people)
    needed = planner.postings_needed(formula)
    assert set(planner.evaluate_index(formula, {k: postings[k] for k in needed}).tolist()) == engine_members(
        criteria, people, events
    )


@PROPERTY_SETTINGS
@given(trees(), people_and_events())
def test_narrowing_never_drops_a_member(criteria, population):
    people, events = population
    members = engine_members(criteria, people, events)
    formula = planner.narrowing(criteria, {}.get)
    if formula is None:
        return
    candidates = set(planner.evaluate_index(formula, index_of(people)).tolist())
    assert members <= candidates
    if planner.index_formula(criteria, {}.get) is None:
        assert planner.tags_of(formula)  # a narrowing always names a tag


def test_segments_are_inlined_so_a_mixer_of_tag_segments_is_tag_only():
    library = {"seg_vip": {"tag": "vip"}, "seg_rich": {"attr": "lifetime_value", "op": "gt", "value": 100}}
    mixer = {"any": [{"segment": "seg_vip"}, {"not": {"tag": "new"}}]}
    assert planner.index_formula(mixer, library.get) == {"any": [{"tag": "vip"}, {"not": {"tag": "new"}}]}
    assert planner.postings_needed(planner.index_formula(mixer, library.get)) == {"vip", "new", planner.EVERYONE}
    mixed = {"all": [{"segment": "seg_rich"}, {"tag": "gold"}, {"any": [{"tag": "vip"}, {"segment": "seg_vip"}]}]}
    assert planner.index_formula(mixed, library.get) is None
    assert planner.narrowing(mixed, library.get) == {
        "all": [{"tag": "gold"}, {"any": [{"tag": "vip"}, {"tag": "vip"}]}]
    }
    assert not planner.uses_events(mixed, library.get)
    assert planner.uses_events({"any": [{"tag": "vip"}, {"event": "purchase", "agg": "count"}]}, library.get)
    assert planner.index_formula({"segment": "seg_gone"}, library.get) is None  # evaluated (and failed) elsewhere


def test_nothing_narrows_a_negated_or_partly_untagged_criteria():
    assert planner.narrowing({"not": {"attr": "city", "op": "eq", "value": "x"}}, {}.get) is None
    assert planner.narrowing({"any": [{"tag": "vip"}, {"group": "grp_a"}]}, {}.get) is None


def test_a_contact_moves_in_both_generations_and_only_published_moves_are_announced():
    targets = [
        Target("seg_a", "gen_1", "gen_2", "gen_2", member=True),
        Target("seg_b", "gen_3", None, "gen_3", member=False),
        Target("seg_c", None, "gen_4", "gen_4", member=True),
    ]
    current = {
        ("seg_a", "gen_1"): False,
        ("seg_a", "gen_2"): True,
        ("seg_b", "gen_3"): True,
        ("seg_c", "gen_4"): False,
    }
    moves = transitions(targets, current)
    assert {(m.segment_id, m.generation, m.enter, m.published) for m in moves} == {
        ("seg_a", "gen_1", True, True),
        ("seg_b", "gen_3", False, True),
        ("seg_c", "gen_4", True, False),
    }
    assert transitions(targets, {**current, ("seg_a", "gen_1"): True, ("seg_b", "gen_3"): False}) == [moves[-1]]


def test_event_ids_are_stable_per_transition():
    first = event_id("ten_1", "seg_a", "ctc_1", "segment.entered", "7")
    assert first == event_id("ten_1", "seg_a", "ctc_1", "segment.entered", "7")
    assert first != event_id("ten_1", "seg_a", "ctc_1", "segment.exited", "7")
    assert first != event_id("ten_1", "seg_a", "ctc_1", "segment.entered", "8")


def test_a_stored_node_is_read_by_its_kind_whatever_the_order_of_its_keys():
    """DynamoDB gives a map back with its keys sorted: an event node then starts with ``agg``."""
    stored = {"agg": "sum", "event": "purchase", "field": "amount", "op": "gt", "value": 100, "within": "7d"}
    library = {"spender": stored, "vip": {"tag": "vip"}}.get
    assert planner.uses_events({"any": [{"segment": "vip"}, {"segment": "spender"}]}, library)
    assert planner.index_formula({"any": [{"segment": "vip"}, {"segment": "spender"}]}, library) is None
