"""A realistic generated tenant: partners across countries, groups, tags and a year of purchases.

Deterministic for a seed, so demos and benchmarks see the same data. Used by
``make demo`` (through the HTTP API of a running ``make run``) and later by the
benchmarks.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

CITIES = {
    "CA": ["Toronto", "Montreal", "Vancouver", "Calgary"],
    "US": ["New York", "Chicago", "Austin", "Seattle", "Boston"],
    "GB": ["London", "Manchester", "Leeds"],
    "DE": ["Berlin", "Munich", "Hamburg"],
    "FR": ["Paris", "Lyon"],
    "BR": ["Sao Paulo", "Rio de Janeiro"],
}
TAGS = [
    "vip",
    "newsletter",
    "reseller",
    "affiliate",
    "family",
    "local",
    "early-adopter",
    "churn-risk",
    "b2b",
    "student",
]
GROUPS = ["High performers", "Growing", "New partners", "Dormant"]
CATEGORIES = ["family", "concert", "theatre", "sports", "workshop"]


@dataclass
class Population:
    contacts_csv: str
    events: list[dict]
    count: int


def generate(count: int = 10_000, seed: int = 7, now: datetime | None = None) -> Population:
    rng = random.Random(seed)
    now = now or datetime.now().astimezone()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "external_id",
            "email",
            "first_name",
            "last_name",
            "group",
            "tags",
            "attributes.country",
            "attributes.city",
            "attributes.signup_at",
            "attributes.lifetime_value",
        ]
    )
    events = []
    for index in range(count):
        country = rng.choices(list(CITIES), weights=[30, 35, 12, 10, 8, 5])[0]
        tags = sorted(rng.sample(TAGS, rng.choice([0, 1, 1, 2, 2, 3])))
        signup = now - timedelta(days=rng.randint(1, 900))
        writer.writerow(
            [
                f"p-{index:06d}",
                f"partner{index}@example.com",
                rng.choice(["Ana", "Bo", "Chen", "Dara", "Eli", "Fatima"]),
                rng.choice(["Silva", "Smith", "Wang", "Okafor", "Müller", "Dubois"]),
                rng.choice(GROUPS),
                ";".join(tags),
                country,
                rng.choice(CITIES[country]),
                signup.isoformat(timespec="seconds"),
                round(rng.lognormvariate(4, 1), 2),
            ]
        )
        likes_discounts = rng.random() < 0.3
        for purchase in range(rng.choice([0, 0, 1, 2, 3, 5, 8])):
            events.append(
                {
                    "external_id": f"p-{index:06d}",
                    "id": f"order-{index}-{purchase}",
                    "type": "purchase",
                    "at": (now - timedelta(days=rng.randint(0, 364), hours=rng.randint(0, 23))).isoformat(
                        timespec="seconds"
                    ),
                    "amount": round(rng.uniform(8, 180), 2),
                    "properties": {
                        "category": rng.choice(CATEGORIES),
                        "discounted": rng.random() < (0.8 if likes_discounts else 0.15),
                    },
                }
            )
    return Population(out.getvalue(), events, count)
