"""Criteria engine throughput: the golden segments over N in-memory contacts, beside DuckDB.

    make bench                      # 1,000,000 contacts
    BENCH_CONTACTS=100000 make bench

Prints, per golden segment, the members found, the engine's time on one core
with warm columns, its throughput, DuckDB's time for the segment's SQL over the
same data (one thread, tables in memory) and the ratio. The engine's one-off
column building (paid by the first segment that touches a tag, attribute or
event type of a batch) is reported on its own line, as is DuckDB's load.
Every count is checked against DuckDB's: a mismatch stops the bench.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from bench.golden import (
    GOLDEN,
    GROUPS,
    TYPES,
    date_days_ago,
    generate,
    load_duckdb,
    resolve,
    sql_for,
    write_duckdb_tables,
)
from bench.population import TAGS
from chalicelib.domain.criteria import Vocabulary, check_criteria
from chalicelib.domain.engine import compile_criteria
from chalicelib.domain.population import Population


def _best_of(runs: int, work) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    count = int(os.environ.get("BENCH_CONTACTS", "1000000"))
    now = datetime.now(UTC)
    started = time.perf_counter()
    people = generate(count, now)
    events = sum(len(p.events) for p in people)
    print(f"generated {count:,} contacts and {events:,} events in {time.perf_counter() - started:.1f} s")

    def local(text: str) -> str:
        return date_days_ago(now, text) if text.startswith("$date:") else text.split(":", 1)[1]

    vocabulary = Vocabulary(
        tags=frozenset(TAGS),
        groups=frozenset(GROUPS),
        attributes=TYPES,
        segments={g.name: frozenset() for g in GOLDEN},
        tag_limit=10,
    )
    library = {g.name: check_criteria(resolve(g.criteria, local), vocabulary).criteria for g in GOLDEN}
    compiled = {name: compile_criteria(criteria, TYPES, library.get) for name, criteria in library.items()}

    population = Population(people, {p.id: p.events for p in people})
    started = time.perf_counter()
    for engine in compiled.values():
        engine.evaluate(population, now)
    cold = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        write_duckdb_tables(people, Path(folder))
        database = duckdb.connect()
        database.execute("SET threads = 1")
        load_duckdb(database, Path(folder))
        load = time.perf_counter() - started

    rows = []
    for golden in GOLDEN:
        engine_seconds, mask = _best_of(3, lambda g=golden: compiled[g.name].evaluate(population, now))
        sql = sql_for(golden, now).replace("SELECT c.id FROM", "SELECT count(*) FROM")
        duck_seconds, duck = _best_of(2, lambda s=sql: database.execute(s).fetchone()[0])
        members = int(mask.sum())
        if members != duck:
            raise SystemExit(f"{golden.name}: the engine found {members}, DuckDB {duck}")
        rows.append((golden.name, members, engine_seconds, duck_seconds))

    print(f"engine: columns built on first use while evaluating all {len(GOLDEN)} segments once: {cold:.2f} s")
    print(f"DuckDB: tables written and loaded in {load:.1f} s (1 thread)")
    print()
    header = (
        f"{'segment':52} {'members':>9} {'engine ms':>10} {'contacts/s':>13} {'DuckDB ms':>10} {'DuckDB/engine':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, members, engine_seconds, duck_seconds in rows:
        print(
            f"{name[:52]:52} {members:>9,} {engine_seconds * 1000:>10.1f} {count / engine_seconds:>13,.0f} "
            f"{duck_seconds * 1000:>10.1f} {duck_seconds / engine_seconds:>12.1f}x"
        )
    total_engine = sum(r[2] for r in rows)
    total_duck = sum(r[3] for r in rows)
    print("-" * len(header))
    print(
        f"{'all ' + str(len(rows)) + ' segments':52} {'':>9} {total_engine * 1000:>10.1f} "
        f"{count * len(rows) / total_engine:>13,.0f} {total_duck * 1000:>10.1f} {total_duck / total_engine:>12.1f}x"
    )
    throughputs = [count / r[2] for r in rows]
    print(
        f"median engine throughput: {statistics.median(throughputs):,.0f} contacts/s per core; "
        f"slowest segment: {min(throughputs):,.0f} contacts/s"
    )


if __name__ == "__main__":
    main()
