"""Reads ``infra/template.json``: the one declaration of tables, queues and topics.

The deploy path merges the file into ``chalice package`` output; the local
runtime calls :func:`local_resources` to create the same things in moto.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEMPLATE_PATH = Path(__file__).with_name("template.json")


@dataclass(frozen=True)
class Table:
    logical_id: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class Queue:
    logical_id: str
    name: str
    attributes: dict[str, str]
    dead_letter_logical_id: str | None
    max_receive_count: int | None


@dataclass(frozen=True)
class Topic:
    logical_id: str
    name: str


@dataclass(frozen=True)
class Subscription:
    topic_logical_id: str
    queue_logical_id: str


@dataclass(frozen=True)
class Declaration:
    tables: list[Table]
    queues: list[Queue]
    topics: list[Topic]
    subscriptions: list[Subscription]
    buckets: list[str]
    """Logical ids of the S3 buckets (deployed, their names are generated; locally provision.py names them)."""

    def queue_named(self, name: str) -> Queue:
        return next(q for q in self.queues if q.name == name)


def load_template() -> dict[str, Any]:
    return json.loads(TEMPLATE_PATH.read_text())


def _get_att_target(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"]
    return None


_QUEUE_ATTRIBUTES = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds")


def local_resources(template: dict[str, Any] | None = None) -> Declaration:
    template = template or load_template()
    tables, queues, topics, subscriptions, buckets = [], [], [], [], []
    for logical_id, resource in template["Resources"].items():
        if "Type" not in resource:
            continue  # a patch onto a resource Chalice generates (e.g. a function's environment)
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::DynamoDB::Table":
            tables.append(Table(logical_id, props))
        elif kind == "AWS::SQS::Queue":
            redrive = props.get("RedrivePolicy") or {}
            queues.append(
                Queue(
                    logical_id=logical_id,
                    name=props["QueueName"],
                    attributes={k: str(props[k]) for k in _QUEUE_ATTRIBUTES if k in props},
                    dead_letter_logical_id=_get_att_target(redrive.get("deadLetterTargetArn")),
                    max_receive_count=int(redrive["maxReceiveCount"]) if redrive else None,
                )
            )
        elif kind == "AWS::S3::Bucket":
            buckets.append(logical_id)
        elif kind == "AWS::SNS::Topic":
            topics.append(Topic(logical_id, props["TopicName"]))
        elif kind == "AWS::SNS::Subscription" and props.get("Protocol") == "sqs":
            subscriptions.append(Subscription(_get_att_target(props["TopicArn"]), _get_att_target(props["Endpoint"])))
    return Declaration(tables, queues, topics, subscriptions, buckets)
