"""Create the declared tables, queues, topics, buckets and the SES identity in moto."""

from __future__ import annotations

import json
from typing import Any

import boto3

from chalicelib.resources import SNAPSHOT_BUCKET
from infra.declaration import Declaration, local_resources

LOCAL_SENDER_DOMAIN = "example.com"
LOCAL_BUCKET_NAMES = {"SnapshotBucket": SNAPSHOT_BUCKET}
"""Deployed, a bucket's name is generated and handed to the functions; locally it is the code's default."""
_TABLE_KEYS = ("TableName", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")


def _create_table(dynamodb: Any, properties: dict[str, Any]) -> None:
    arguments = {key: properties[key] for key in _TABLE_KEYS if key in properties}
    try:
        dynamodb.create_table(**arguments)
    except dynamodb.exceptions.ResourceInUseException:
        return
    ttl = properties.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=properties["TableName"], TimeToLiveSpecification=ttl)


def provision(declaration: Declaration | None = None) -> dict[str, str]:
    """Create everything (idempotently); return queue name → queue URL."""
    declaration = declaration or local_resources()
    dynamodb, sqs, sns = boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("sns")
    for table in declaration.tables:
        _create_table(dynamodb, table.properties)

    urls: dict[str, str] = {}
    arns: dict[str, str] = {}
    by_id = {queue.logical_id: queue for queue in declaration.queues}
    # dead-letter queues first, so redrive policies can point at them
    ordered = sorted(declaration.queues, key=lambda q: q.dead_letter_logical_id is not None)
    for queue in ordered:
        attributes = dict(queue.attributes)
        if queue.dead_letter_logical_id:
            dead_letter = by_id[queue.dead_letter_logical_id]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arns[dead_letter.logical_id], "maxReceiveCount": str(queue.max_receive_count)}
            )
        url = sqs.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
        urls[queue.name] = url
        arns[queue.logical_id] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    topic_arns = {topic.logical_id: sns.create_topic(Name=topic.name)["TopicArn"] for topic in declaration.topics}
    for subscription in declaration.subscriptions:
        sns.subscribe(
            TopicArn=topic_arns[subscription.topic_logical_id],
            Protocol="sqs",
            Endpoint=arns[subscription.queue_logical_id],
            Attributes={"RawMessageDelivery": "false"},
        )

    s3 = boto3.client("s3")
    for bucket in declaration.buckets:
        s3.create_bucket(Bucket=LOCAL_BUCKET_NAMES[bucket])  # idempotent for its owner in us-east-1

    # moto's SESv2 sends through the SES v1 backend, whose verified identities it checks
    boto3.client("ses").verify_domain_identity(Domain=LOCAL_SENDER_DOMAIN)
    return urls
