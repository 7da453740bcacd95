"""The golden segments over an in-memory population: the compiled engine against DuckDB's SQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.golden import GOLDEN, TYPES, date_days_ago, duckdb_oracle, generate, resolve, sql_for
from bench.population import TAGS
from chalicelib.domain.criteria import Vocabulary, check_criteria
from chalicelib.domain.engine import compile_criteria
from chalicelib.domain.population import Population

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    people = generate(3_000, NOW)
    database = duckdb_oracle(people, tmp_path_factory.mktemp("golden"))
    return people, database


def local(text: str) -> str:
    if text.startswith("$date:"):
        return date_days_ago(NOW, text)
    return text.split(":", 1)[1]  # $group:resellers → resellers, $segment:name → name


VOCABULARY = Vocabulary(
    tags=frozenset(TAGS),
    groups=frozenset({"resellers", "agencies", "creators"}),
    attributes=TYPES,
    segments={g.name: frozenset() for g in GOLDEN},
    tag_limit=10,
)
LIBRARY = {g.name: check_criteria(resolve(g.criteria, local), VOCABULARY).criteria for g in GOLDEN}


def test_there_are_at_least_thirty_golden_segments():
    assert len(LIBRARY) == len(GOLDEN) >= 30


@pytest.mark.parametrize("golden", GOLDEN, ids=[g.name for g in GOLDEN])
def test_the_engine_finds_exactly_what_sql_finds(world, golden):
    people, database = world
    compiled = compile_criteria(LIBRARY[golden.name], TYPES, LIBRARY.get)
    population = Population(people, {p.id: p.events for p in people})
    found = {people[row].id for row in compiled.evaluate(population, NOW).nonzero()[0]}
    expected = {row[0] for row in database.execute(sql_for(golden, NOW)).fetchall()}
    assert found == expected
    assert 0 < len(expected) < len(people) or golden.name in {"never purchased"}, "a golden set should discriminate"
