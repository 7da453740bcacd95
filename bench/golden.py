"""The golden segments: criteria with the SQL that independently says who matches.

A fixed, seeded population (every attribute type, tags, groups, purchase and
visit events, some values missing) is generated three ways from the same
records: as JSON Lines and events for the HTTP API, as in-memory contacts for
the engine, and as CSV files for DuckDB. Each golden entry pairs a criteria with
a hand-written SQL condition over that DuckDB schema; the tests check that the
service's preview and stored membership return exactly the SQL's contacts, and
``make bench`` times the engine against DuckDB on the same segments.

Event times sit a quarter of a day off whole days, so no event or date lies
within hours of a window edge ("7d", "36h") and a few seconds between
generating and evaluating cannot flip a result.

Criteria may say ``"$group:<key>"`` or ``"$segment:<name>"``; ``resolve`` swaps
in the real ids.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.population import CATEGORIES, CITIES, TAGS
from chalicelib.domain.attributes import BUILT_IN

CUSTOM_TYPES = {"newsletter": "boolean", "interests": "string_list"}
"""Attributes of the population beyond the built-in ones (whose types every tenant already knows)."""
TYPES = {**BUILT_IN, **CUSTOM_TYPES}
GROUPS = {"resellers": "Resellers", "agencies": "Agencies", "creators": "Creators"}
INTERESTS = ["music", "theatre", "sports", "kids", "food"]


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class GoldenContact:
    id: str
    ordinal: int
    external_id: str
    email: str
    first_name: str
    group: str | None
    tags: frozenset[str]
    attributes: dict[str, Any]
    last_name: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


def generate(count: int, now: datetime, seed: int = 11) -> list[GoldenContact]:
    rng = random.Random(seed)
    people = []
    for ordinal in range(1, count + 1):
        country = rng.choice(list(CITIES))
        attributes: dict[str, Any] = {"country": country}
        if rng.random() < 0.9:
            attributes["city"] = rng.choice(CITIES[country])
        if rng.random() < 0.8:
            attributes["lifetime_value"] = rng.choice([0, 50, 100, 200, 300]) + rng.randint(0, 700)
        attributes["signup_at"] = _stamp(now - timedelta(days=rng.randint(0, 700) + 0.25))
        if rng.random() < 0.7:
            attributes["newsletter"] = rng.random() < 0.5
        if rng.random() < 0.6:
            attributes["interests"] = sorted(rng.sample(INTERESTS, rng.randint(0, 3)))
        discount_lover = rng.random() < 0.3
        events = []
        for number in range(rng.choice([0, 0, 1, 1, 2, 3, 5, 8])):
            properties: dict[str, Any] = {
                "category": rng.choice(CATEGORIES),
                "discounted": rng.random() < (0.85 if discount_lover else 0.15),
            }
            if rng.random() < 0.5:
                properties["seats"] = rng.randint(1, 6)
            events.append(
                {
                    "id": f"o-{ordinal}-{number}",
                    "type": "purchase",
                    "at": _stamp(now - timedelta(days=rng.randint(0, 380) + 0.25)),
                    "amount": float(rng.randint(5, 250)),
                    "properties": properties,
                }
            )
        for number in range(rng.choice([0, 1, 3, 6])):
            events.append(
                {
                    "id": f"v-{ordinal}-{number}",
                    "type": "visit",
                    "at": _stamp(now - timedelta(days=rng.randint(0, 60) + 0.25)),
                }
            )
        people.append(
            GoldenContact(
                id=f"p{ordinal}",
                ordinal=ordinal,
                external_id=f"g-{ordinal:07d}",
                email=f"person{ordinal}@{rng.choice(['partner.example.com', 'shop.example.org'])}",
                first_name=rng.choice(["Ana", "Bo", "Chen", "Dara"]),
                group=rng.choice([None, *GROUPS]),
                tags=frozenset(rng.sample(TAGS, rng.choice([0, 1, 1, 2, 3, 4]))),
                attributes=attributes,
                events=events,
            )
        )
    return people


# --- the three renderings ---------------------------------------------------------------------------------


def as_jsonl(people: list[GoldenContact]) -> str:
    """An import body for ``POST /contacts/import`` (JSON Lines keeps attribute types)."""
    rows = []
    for person in people:
        row = {
            "external_id": person.external_id,
            "email": person.email,
            "first_name": person.first_name,
            "tags": sorted(person.tags),
            "attributes": person.attributes,
        }
        if person.group:
            row["group"] = GROUPS[person.group]
        rows.append(json.dumps(row))
    return "\n".join(rows) + "\n"


def as_api_events(people: list[GoldenContact]) -> list[dict[str, Any]]:
    return [{"external_id": p.external_id, **event} for p in people for event in p.events]


def write_duckdb_tables(people: list[GoldenContact], folder: Path) -> None:
    """contacts.csv, tags.csv and events.csv for ``load_duckdb``."""
    with (folder / "contacts.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["id", "external_id", "email", "grp", "country", "city", "ltv", "signup_at", "newsletter", "interests"]
        )
        for p in people:
            a = p.attributes
            writer.writerow(
                [
                    p.id,
                    p.external_id,
                    p.email,
                    p.group or "",
                    a.get("country", ""),
                    a.get("city", ""),
                    a.get("lifetime_value", ""),
                    a["signup_at"].replace("T", " ").rstrip("Z"),
                    "" if "newsletter" not in a else str(a["newsletter"]).lower(),
                    "" if "interests" not in a else "|" + "|".join(a["interests"]) + "|",
                ]
            )
    with (folder / "tags.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "tag"])
        writer.writerows((p.id, tag) for p in people for tag in sorted(p.tags))
    with (folder / "events.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "type", "at", "amount", "category", "discounted", "seats"])
        for p in people:
            for e in p.events:
                props = e.get("properties", {})
                writer.writerow(
                    [
                        p.id,
                        e["type"],
                        e["at"].replace("T", " ").rstrip("Z"),
                        e.get("amount", ""),
                        props.get("category", ""),
                        "" if "discounted" not in props else str(props["discounted"]).lower(),
                        props.get("seats", ""),
                    ]
                )


def duckdb_oracle(people: list[GoldenContact], folder: Path) -> Any:
    """A DuckDB connection holding ``people`` (their CSV tables written to ``folder``): the golden SQL's oracle."""
    import duckdb  # a test and bench dependency only

    write_duckdb_tables(people, folder)
    database = duckdb.connect()
    load_duckdb(database, folder)
    return database


def load_duckdb(connection: Any, folder: Path) -> None:
    """Create tables contacts, tags, events (empty CSV cells are NULL)."""
    connection.execute(
        f"""
        CREATE TABLE contacts AS SELECT * FROM read_csv('{folder / "contacts.csv"}', header=true, columns={{
            'id': 'VARCHAR', 'external_id': 'VARCHAR', 'email': 'VARCHAR', 'grp': 'VARCHAR', 'country': 'VARCHAR',
            'city': 'VARCHAR', 'ltv': 'DOUBLE', 'signup_at': 'TIMESTAMP', 'newsletter': 'BOOLEAN',
            'interests': 'VARCHAR'}});
        CREATE TABLE tags AS SELECT * FROM read_csv('{folder / "tags.csv"}', header=true,
            columns={{'id': 'VARCHAR', 'tag': 'VARCHAR'}});
        CREATE TABLE events AS SELECT * FROM read_csv('{folder / "events.csv"}', header=true, columns={{
            'id': 'VARCHAR', 'type': 'VARCHAR', 'at': 'TIMESTAMP', 'amount': 'DOUBLE', 'category': 'VARCHAR',
            'discounted': 'BOOLEAN', 'seats': 'DOUBLE'}});
        """
    )


# --- the golden segments ----------------------------------------------------------------------------------


def _has(tag: str) -> str:
    return f"c.id IN (SELECT id FROM tags WHERE tag = '{tag}')"


def _purchases(window_days: float | None = None, where: str = "TRUE") -> str:
    since = f"AND e.at >= $now - INTERVAL {int(window_days * 24)} HOUR" if window_days else ""
    return f"FROM events e WHERE e.id = c.id AND e.type = 'purchase' {since} AND ({where})"


_FAMILY = "e.category = 'family'"
_FAMILY_OR_WORKSHOP_OVER_20 = "e.category IN ('family', 'workshop') AND e.amount > 20"


@dataclass(frozen=True)
class Golden:
    name: str
    criteria: dict[str, Any]
    sql: str  # a condition on contacts c; $now is the evaluation time


SEED_LOCAL_FAMILY_DISCOUNT = Golden(
    "local family discount buyers",
    {
        "all": [
            {"attr": "city", "op": "eq", "value": "toronto"},
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
    f"lower(c.city) = 'toronto' AND EXISTS (SELECT 1 {_purchases(where=_FAMILY)}) "
    f"AND (SELECT avg(CASE WHEN e.discounted THEN 1.0 ELSE 0.0 END) {_purchases()}) > 0.5",
)

GOLDEN: list[Golden] = [
    Golden("tag", {"tag": "vip"}, _has("vip")),
    Golden("not tag", {"not": {"tag": "vip"}}, f"NOT {_has('vip')}"),
    Golden("either tag", {"any": [{"tag": "vip"}, {"tag": "family"}]}, f"{_has('vip')} OR {_has('family')}"),
    Golden("both tags", {"all": [{"tag": "vip"}, {"tag": "family"}]}, f"{_has('vip')} AND {_has('family')}"),
    Golden(
        "ten tags with and/or (PartnerStack)",
        {
            "any": [
                {"all": [{"tag": "vip"}, {"tag": "b2b"}]},
                {"all": [{"tag": "reseller"}, {"not": {"tag": "churn-risk"}}]},
                {"any": [{"tag": "affiliate"}, {"tag": "student"}, {"tag": "early-adopter"}]},
                {"all": [{"tag": "local"}, {"tag": "family"}, {"tag": "newsletter"}]},
            ]
        },
        f"({_has('vip')} AND {_has('b2b')}) OR ({_has('reseller')} AND NOT {_has('churn-risk')}) "
        f"OR {_has('affiliate')} OR {_has('student')} OR {_has('early-adopter')} "
        f"OR ({_has('local')} AND {_has('family')} AND {_has('newsletter')})",
    ),
    Golden("group", {"group": "$group:resellers"}, "c.grp = 'resellers'"),
    Golden(
        "in no group",
        {"not": {"any": [{"group": "$group:resellers"}, {"group": "$group:agencies"}, {"group": "$group:creators"}]}},
        "c.grp IS NULL",
    ),
    Golden("city eq ignores case", {"attr": "city", "op": "eq", "value": "TORONTO"}, "lower(c.city) = 'toronto'"),
    Golden(
        "city in",
        {"attr": "city", "op": "in", "value": ["Toronto", "montreal"]},
        "lower(c.city) IN ('toronto', 'montreal')",
    ),
    Golden(
        "city not_in keeps the unknown",
        {"attr": "city", "op": "not_in", "value": ["Toronto"]},
        "c.city IS NULL OR lower(c.city) <> 'toronto'",
    ),
    Golden("city starts_with", {"attr": "city", "op": "starts_with", "value": "M"}, "lower(c.city) LIKE 'm%'"),
    Golden("city contains", {"attr": "city", "op": "contains", "value": "on"}, "lower(c.city) LIKE '%on%'"),
    Golden(
        "country ne", {"attr": "country", "op": "ne", "value": "ca"}, "c.country IS NULL OR lower(c.country) <> 'ca'"
    ),
    Golden("lifetime value gt", {"attr": "lifetime_value", "op": "gt", "value": 500}, "c.ltv > 500"),
    Golden(
        "lifetime value between",
        {"attr": "lifetime_value", "op": "between", "value": [100, 300]},
        "c.ltv BETWEEN 100 AND 300",
    ),
    Golden("lifetime value missing", {"attr": "lifetime_value", "op": "not_exists"}, "c.ltv IS NULL"),
    Golden(
        "lifetime value in",
        {"attr": "lifetime_value", "op": "in", "value": [100, 200, 300]},
        "c.ltv IN (100, 200, 300)",
    ),
    Golden(
        "signed up within 30 days",
        {"attr": "signup_at", "op": "within_last", "value": "30d"},
        "c.signup_at >= $now - INTERVAL 30 DAY AND c.signup_at <= $now",
    ),
    Golden(
        "signed up over a year ago",
        {"attr": "signup_at", "op": "older_than", "value": "52w"},
        "c.signup_at < $now - INTERVAL 364 DAY",
    ),
    Golden(
        "signed up before a date",
        {"attr": "signup_at", "op": "lt", "value": "$date:100"},
        "c.signup_at < $now - INTERVAL 100 DAY",
    ),
    Golden("newsletter", {"attr": "newsletter", "op": "eq", "value": True}, "c.newsletter"),
    Golden("not newsletter", {"attr": "newsletter", "op": "ne", "value": True}, "c.newsletter IS NOT TRUE"),
    Golden("interest", {"attr": "interests", "op": "contains", "value": "Music"}, "c.interests LIKE '%|music|%'"),
    Golden(
        "any of interests",
        {"attr": "interests", "op": "in", "value": ["theatre", "sports"]},
        "c.interests LIKE '%|theatre|%' OR c.interests LIKE '%|sports|%'",
    ),
    Golden("no interests recorded", {"attr": "interests", "op": "not_exists"}, "c.interests IS NULL"),
    Golden("email domain", {"attr": "email", "op": "contains", "value": "@partner."}, "c.email LIKE '%@partner.%'"),
    Golden(
        "purchased in the last two months",
        {"event": "purchase", "within": "60d"},
        f"EXISTS (SELECT 1 {_purchases(60)})",
    ),
    Golden(
        "spent over $100 this week",
        {"event": "purchase", "within": "7d", "agg": "sum", "field": "amount", "op": "gt", "value": 100},
        f"(SELECT coalesce(sum(e.amount), 0) {_purchases(7)}) > 100",
    ),
    Golden(
        "never purchased",
        {"event": "purchase", "agg": "count", "op": "eq", "value": 0},
        f"NOT EXISTS (SELECT 1 {_purchases()})",
    ),
    Golden(
        "average basket over 90 days",
        {"event": "purchase", "within": "90d", "agg": "avg", "field": "amount", "op": "gte", "value": 120},
        f"(SELECT avg(e.amount) {_purchases(90)}) >= 120",
    ),
    Golden(
        "a big purchase",
        {"event": "purchase", "agg": "max", "field": "amount", "op": "gt", "value": 240},
        f"(SELECT max(e.amount) {_purchases()}) > 240",
    ),
    Golden(
        "a small purchase",
        {"event": "purchase", "agg": "min", "field": "amount", "op": "lt", "value": 10},
        f"(SELECT min(e.amount) {_purchases()}) < 10",
    ),
    Golden(
        "usually buys discounted",
        {
            "event": "purchase",
            "agg": "share",
            "op": "gt",
            "value": 0.5,
            "where": [{"prop": "discounted", "op": "eq", "value": True}],
        },
        f"(SELECT avg(CASE WHEN e.discounted THEN 1.0 ELSE 0.0 END) {_purchases()}) > 0.5",
    ),
    Golden(
        "two family purchases this year",
        {
            "event": "purchase",
            "within": "365d",
            "agg": "count",
            "op": "gte",
            "value": 2,
            "where": [{"prop": "category", "op": "eq", "value": "Family"}],
        },
        f"(SELECT count(*) {_purchases(365, _FAMILY)}) >= 2",
    ),
    Golden(
        "family or workshop over $20",
        {
            "event": "purchase",
            "where": [
                {"prop": "category", "op": "in", "value": ["family", "workshop"]},
                {"prop": "amount", "op": "gt", "value": 20},
            ],
        },
        f"EXISTS (SELECT 1 {_purchases(where=_FAMILY_OR_WORKSHOP_OVER_20)})",
    ),
    Golden(
        "seats per purchase",
        {"event": "purchase", "agg": "sum", "field": "seats", "op": "between", "value": [4, 10]},
        f"(SELECT coalesce(sum(e.seats), 0) {_purchases()}) BETWEEN 4 AND 10",
    ),
    Golden(
        "purchases without seats",
        {
            "event": "purchase",
            "agg": "count",
            "op": "gte",
            "value": 2,
            "where": [{"prop": "seats", "op": "not_exists"}],
        },
        f"(SELECT count(*) {_purchases(where='e.seats IS NULL')}) >= 2",
    ),
    Golden(
        "frequent visitor",
        {"event": "visit", "within": "30d", "agg": "count", "op": "gte", "value": 3},
        "(SELECT count(*) FROM events e WHERE e.id = c.id AND e.type = 'visit'"
        " AND e.at >= $now - INTERVAL 30 DAY) >= 3",
    ),
    SEED_LOCAL_FAMILY_DISCOUNT,
    Golden(
        "the mixer: local family discount buyers or VIPs",
        {"any": [{"segment": "$segment:local family discount buyers"}, {"tag": "vip"}]},
        f"({SEED_LOCAL_FAMILY_DISCOUNT.sql}) OR {_has('vip')}",
    ),
    Golden(
        "six levels deep",
        {
            "not": {
                "any": [
                    {"tag": "churn-risk"},
                    {
                        "all": [
                            {"attr": "country", "op": "eq", "value": "US"},
                            {"not": {"any": [{"tag": "vip"}, {"attr": "newsletter", "op": "exists"}]}},
                        ]
                    },
                ]
            }
        },
        f"NOT ({_has('churn-risk')} OR (lower(c.country) = 'us' AND NOT ({_has('vip')} OR c.newsletter IS NOT NULL)))",
    ),
]


def resolve(criteria: Any, lookup: Callable[[str], Any]) -> Any:
    """Replace every "$…" string with lookup(that string)."""
    if isinstance(criteria, dict):
        return {key: resolve(value, lookup) for key, value in criteria.items()}
    if isinstance(criteria, list):
        return [resolve(value, lookup) for value in criteria]
    if isinstance(criteria, str) and criteria.startswith("$"):
        return lookup(criteria)
    return criteria


def date_days_ago(now: datetime, text: str) -> str:
    """``$date:100`` → the date-time 100 days (and a quarter) before ``now``."""
    return _stamp(now - timedelta(days=int(text.split(":", 1)[1])) + timedelta(hours=6))


def sql_for(golden: Golden, now: datetime) -> str:
    stamp = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"SELECT c.id FROM contacts c WHERE {golden.sql.replace('$now', f'TIMESTAMP {stamp!r}')}"
