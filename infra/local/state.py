"""What `make run` keeps across restarts: DynamoDB items, queued SQS messages and sent mail.

Runs inside the moto server process (infra/local/moto_server.py), on moto's own backends, so saving
neither receives messages nor disturbs the local dispatcher. The state is one gzipped JSON file
written atomically (a temporary file, then a rename). Restoring runs after the runtime has created
the declared tables, queues and topics (infra/local/provision.py), so only their contents come back:

- DynamoDB items, as they were;
- SQS messages, with their bodies, attributes and remaining delay; a message that was being handled
  when the state was saved comes back visible (it is delivered again: handlers are idempotent) and its
  receive count starts again from zero;
- sent mail (what `/moto-api/data.json` shows under ``ses``).
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.ses.models import RawMessage, ses_backends
from moto.sqs.models import sqs_backends

from infra.local.moto_patches import _WRITE_LOCK

STATE_FILE = "state.json.gz"


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _backends() -> tuple[Any, Any, Any]:
    region = _region()
    return (
        dynamodb_backends[DEFAULT_ACCOUNT_ID][region],
        sqs_backends[DEFAULT_ACCOUNT_ID][region],
        ses_backends[DEFAULT_ACCOUNT_ID][region],
    )


def snapshot() -> dict[str, Any]:
    dynamodb, sqs, ses = _backends()
    now = time.time()
    with _WRITE_LOCK:  # every DynamoDB write holds it: the items are one consistent view
        tables = {name: [item.to_json()["Attributes"] for item in table.all_items()] for name, table in
                  dynamodb.tables.items()}  # fmt: skip
    queues = {
        name: [
            {
                "body": message.body,
                "attributes": message.message_attributes,
                "delay": max(0, int(message.delayed_until - now)) if message.delayed_until else 0,
            }
            for message in list(queue._messages)
        ]
        for name, queue in list(sqs.queues.items())
    }
    mail = [
        {"id": m.id, "source": m.source, "destinations": m.destinations, "raw_data": m.raw_data}
        for m in list(ses.sent_messages)
        if isinstance(m, RawMessage)
    ]
    return {"tables": tables, "queues": queues, "mail": mail}


def counts(state: dict[str, Any]) -> dict[str, int]:
    return {
        "items": sum(len(items) for items in state["tables"].values()),
        "messages": sum(len(messages) for messages in state["queues"].values()),
        "mail": len(state["mail"]),
    }


def save(directory: Path) -> dict[str, int]:
    state = snapshot()
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / (STATE_FILE + ".partial")
    with gzip.open(partial, "wt", encoding="utf-8", compresslevel=1) as file:
        json.dump(state, file, separators=(",", ":"))
    partial.replace(directory / STATE_FILE)
    return counts(state)


def restore(directory: Path) -> dict[str, int] | None:
    """Load the saved state into the (already provisioned) backends; None when there is none."""
    path = directory / STATE_FILE
    if not path.exists():
        return None
    with gzip.open(path, "rt", encoding="utf-8") as file:
        state = json.load(file)
    dynamodb, sqs, ses = _backends()
    with _WRITE_LOCK:
        for name, items in state["tables"].items():
            table = dynamodb.tables.get(name)
            for attributes in items if table is not None else ():
                table.put_item(attributes)
    for name, messages in state["queues"].items():
        if name not in sqs.queues:
            continue
        for message in messages:
            sqs.send_message(
                name, message["body"], message_attributes=message["attributes"] or None,
                delay_seconds=min(message["delay"], 900) or None,
            )  # fmt: skip
    ses.sent_messages.extend(RawMessage(m["id"], m["source"], m["destinations"], m["raw_data"]) for m in state["mail"])
    return counts(state)
