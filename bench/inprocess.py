"""In-process moto for the benchmarks, started before any AWS client exists, and a request meter.

Import this module first: it sets the environment, patches and starts moto, and
creates the declared resources.
"""

from __future__ import annotations

import os

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "SEGMENTS_STAGE": "local",
}.items():
    os.environ.setdefault(_name, _value)
os.environ.pop("AWS_ENDPOINT_URL", None)

from moto import mock_aws  # noqa: E402

from infra.local import moto_patches  # noqa: E402

moto_patches.apply()
mock_aws().start()

import gc  # noqa: E402
import math  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any  # noqa: E402

from botocore.client import BaseClient  # noqa: E402

from chalicelib.config import LOCAL_OPERATOR_KEY  # noqa: E402
from chalicelib.domain.contacts import Contact  # noqa: E402
from chalicelib.storage.contacts import ContactTable  # noqa: E402
from chalicelib.storage.table import MainTableModel  # noqa: E402
from infra.local.provision import provision  # noqa: E402

provision()


def _value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return math.ceil(len(inner.lstrip("-").replace(".", "")) / 2) + 1
    if kind == "B":
        return len(inner)
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(math.ceil(len(n.lstrip("-").replace(".", "")) / 2) + 1 for n in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in inner)
    return 1


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


class Meter:
    """DynamoDB requests by operation and read units, from every response the app's client parses.

    Read units are computed from the bytes of the items each response returned, as
    DynamoDB bills them (strongly consistent: 1 unit per 4 KB, rounded up per Query
    page and per item of GetItem/BatchGetItem); moto does not bill.
    """

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.read_units = 0.0
        client = MainTableModel._get_connection().connection.client
        client.meta.events.register("after-call.dynamodb", self._record)

    def _record(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.requests[model.name] += 1
        if model.name in ("Query", "Scan"):
            self.read_units += max(1, math.ceil(sum(item_size(i) for i in parsed.get("Items", [])) / 4096))
        elif model.name == "GetItem":
            self.read_units += max(1, math.ceil(item_size(parsed.get("Item", {})) / 4096))
        elif model.name == "BatchGetItem":
            for items in parsed.get("Responses", {}).values():
                self.read_units += sum(max(1, math.ceil(item_size(i) / 4096)) for i in items)

    def reset(self) -> None:
        self.requests.clear()
        self.read_units = 0.0

    def total(self) -> int:
        return sum(self.requests.values())


class AwsCalls:
    """Every AWS API call any client of this process makes, by (service, operation)."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.counting = True
        original = BaseClient._make_api_call
        calls = self

        def counted(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            if calls.counting:
                calls.calls[(client.meta.service_model.service_name, operation)] += 1
            return original(client, operation, params)

        BaseClient._make_api_call = counted  # type: ignore[method-assign]  # every AWS call of the bench is counted

    def reset(self) -> None:
        self.calls.clear()

    @contextmanager
    def not_counted(self) -> Iterator[None]:
        """Calls the bench makes to watch (not part of what is measured)."""
        self.counting = False
        try:
            yield
        finally:
            self.counting = True


def new_bench_tenant(api: Any, name: str, tags: Iterable[str] = ()) -> tuple[str, str]:
    """A tenant with the segments feature and ``tags``, made through the API: (its id, its admin key)."""
    tenant = api.post("/tenants", key=LOCAL_OPERATOR_KEY, json={"name": name}).json
    api.patch(f"/tenants/{tenant['id']}", key=LOCAL_OPERATOR_KEY, json={"features": {"segments": True}})
    for tag in tags:
        api.post("/tags", key=tenant["admin_key"], json={"name": tag})
    return tenant["id"], tenant["admin_key"]


def store_contacts(tenant_id: str, contacts: list[Contact]) -> None:
    """New contacts, with ordinals 1…n, written straight into storage (the API would take hours at bench
    sizes): their index entries and change records as a write through the API makes them."""
    table = ContactTable(tenant_id)
    assert table.allocate_ordinals(len(contacts)) == 1
    for batch in table.transaction_batches([(None, c) for c in contacts]):
        table.write(batch)


def freeze_loaded_data() -> None:
    """Exempt everything loaded so far (moto's stored items: tens of millions of objects) from the cyclic
    garbage collector. Otherwise every full collection walks them all, stalling whatever runs next for
    seconds; the service never pays that (under ``make run`` moto is its own process, in AWS it is DynamoDB)."""
    gc.collect()
    gc.freeze()


def print_table(rows: list[tuple[str, str]]) -> None:
    """A bench's figures: one labelled line each, the values aligned."""
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
