"""The moto fixes change cost, not behaviour: each is held to moto's own implementation."""

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models.table import Table

from infra.local import moto_patches
from infra.local.moto_patches import transact_write_items

TABLE = "segments-main"


@pytest.fixture
def dynamodb():
    client = boto3.client("dynamodb")
    client.put_item(TableName=TABLE, Item={"pk": {"S": "PATCH#t"}, "sk": {"S": "a"}, "n": {"N": "1"}})
    return client


def item(client, sk):
    return client.get_item(TableName=TABLE, Key={"pk": {"S": "PATCH#t"}, "sk": {"S": sk}}).get("Item")


def test_the_patched_transaction_is_the_one_in_use_and_every_write_holds_the_lock():
    from moto.dynamodb.models import DynamoDBBackend

    assert DynamoDBBackend.transact_write_items.__wrapped__ is transact_write_items
    for name in ("put_item", "update_item", "delete_item"):
        assert hasattr(getattr(DynamoDBBackend, name), "__wrapped__"), name


def test_a_cancelled_transaction_leaves_every_item_as_it_was(dynamodb):
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "PATCH#t"}, "sk": {"S": "new"}}}},
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "PATCH#t"}, "sk": {"S": "a"}},
                        "UpdateExpression": "SET n = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "PATCH#t"}, "sk": {"S": "missing"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    assert item(dynamodb, "new") is None
    assert item(dynamodb, "a")["n"] == {"N": "1"}


def test_a_successful_transaction_applies_everything(dynamodb):
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "PATCH#t"}, "sk": {"S": "b"}}}},
            {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "PATCH#t"}, "sk": {"S": "a"}}}},
        ]
    )
    assert item(dynamodb, "b") is not None and item(dynamodb, "a") is None


def test_only_touched_items_are_copied(dynamodb, monkeypatch):
    copied = []
    real_deepcopy = moto_patches.copy.deepcopy
    monkeypatch.setattr(
        moto_patches.copy, "deepcopy", lambda value, *memo: copied.append(type(value)) or real_deepcopy(value, *memo)
    )
    dynamodb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": {"pk": {"S": "PATCH#t"}, "sk": {"S": "a"}},
                    "UpdateExpression": "SET n = :three",
                    "ExpressionAttributeValues": {":three": {"N": "3"}},
                }
            },
        ]
    )
    assert copied and Table not in copied


def test_queue_attributes_and_retention_match_moto(monkeypatch):
    from moto.sqs.models import Queue

    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="patch-probe", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=30)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=30)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "2"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    assert attributes["MessageRetentionPeriod"] == "60"
    ready = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
    assert sorted(m["Body"] for m in ready) == ["b", "c"]  # not the one in flight, not the delayed one
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "3"
    monkeypatch.setattr(Queue, "attributes", moto_patches.MOTO_QUEUE_ATTRIBUTES)
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"] == attributes
    monkeypatch.undo()
    sqs.delete_queue(QueueUrl=url)


def test_deleting_messages_keeps_moto_semantics():
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="patch-delete")["QueueUrl"]
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    first = received[0]["ReceiptHandle"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first)  # deleting again is fine
    with pytest.raises(ClientError) as refused:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
    assert refused.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"
    left = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in left] == [received[1]["Body"]]
    sqs.delete_queue(QueueUrl=url)


def test_partition_queries_return_what_moto_returns(monkeypatch):
    from moto.dynamodb.models.table import Table

    client = boto3.client("dynamodb")
    for pk in ("Q#a", "Q#b"):
        for sk in ("3", "1", "2", "10"):
            client.put_item(TableName=TABLE, Item={"pk": {"S": pk}, "sk": {"S": sk}, "v": {"N": sk}})

    def run():
        return [
            client.query(
                TableName=TABLE,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "Q#a"}},
                **extra,
            )["Items"]
            for extra in ({}, {"ScanIndexForward": False}, {"Limit": 2})
        ] + [
            {
                name: value
                for name, value in client.query(
                    TableName=TABLE,
                    KeyConditionExpression="pk = :p AND " + condition,
                    ExpressionAttributeValues={":p": {"S": "Q#b"}, ":s": {"S": "1"}},
                    **extra,
                ).items()
                if name != "ResponseMetadata"
            }
            for condition, extra in (
                ("begins_with(sk, :s)", {}),
                ("begins_with(sk, :s)", {"Limit": 1}),
                ("begins_with(sk, :s)", {"ScanIndexForward": False}),
                ("begins_with(sk, :s)", {"Limit": 1, "ExclusiveStartKey": {"pk": {"S": "Q#b"}, "sk": {"S": "1"}}}),
                ("sk > :s", {"Limit": 2}),
            )
        ]

    for n, sk in enumerate(("3", "1", "2", "10")):
        item = {"pk": {"S": f"G#{n % 2}"}, "sk": {"S": sk}, "gsi1pk": {"S": "IDX#x"}, "gsi1sk": {"S": f"{9 - n}"}}
        client.put_item(TableName=TABLE, Item=item)
    client.put_item(
        TableName=TABLE, Item={"pk": {"S": "G#9"}, "sk": {"S": "1"}, "gsi1pk": {"S": "IDX#y"}, "gsi1sk": {"S": "1"}}
    )

    def by_index():
        return [
            client.query(
                TableName=TABLE,
                IndexName="gsi1",
                KeyConditionExpression="gsi1pk = :p" + condition,
                ExpressionAttributeValues={":p": {"S": "IDX#x"}, **values},
                **extra,
            )["Items"]
            for condition, values, extra in (
                ("", {}, {}),
                ("", {}, {"ScanIndexForward": False, "Limit": 3}),
                (" AND gsi1sk <= :s", {":s": {"S": "7"}}, {}),
            )
        ]

    patched, patched_index = run(), by_index()
    monkeypatch.setattr(Table, "query", moto_patches.MOTO_TABLE_QUERY)
    monkeypatch.setattr(Table, "all_items", moto_patches.MOTO_ALL_ITEMS)
    assert run() == patched
    assert by_index() == patched_index
    assert [i["sk"]["S"] for i in patched[0]] == ["1", "10", "2", "3"]
    assert [i["sk"]["S"] for i in patched[3]["Items"]] == ["1", "10"]
    assert patched[4]["LastEvaluatedKey"] == {"pk": {"S": "Q#b"}, "sk": {"S": "1"}}
    assert [i["sk"]["S"] for i in patched[6]["Items"]] == ["10"]
    assert [i["gsi1sk"]["S"] for i in patched_index[0]] == ["6", "7", "8", "9"]
    assert [i["gsi1sk"]["S"] for i in patched_index[2]] == ["6", "7"]


def test_item_reads_answer_exactly_what_the_shape_serializer_would(dynamodb, monkeypatch):
    import copy
    import json

    from moto.core.serialize import JSONSerializer

    compared = []

    def both(self, resp, result):
        fast = moto_patches.serialize_item_reads(self, copy.deepcopy(resp), result)
        slow = moto_patches._shape_serialize_result(self, copy.deepcopy(resp), result)
        compared.append(self.operation_model.name)
        assert json.loads(fast["body"]) == json.loads(slow["body"])
        assert (fast["headers"], fast["status_code"]) == (slow["headers"], slow["status_code"])
        return fast

    monkeypatch.setattr(JSONSerializer, "_serialize_result", both)
    rich = {
        "pk": {"S": "PATCH#read"},
        "sk": {"S": "1"},
        "n": {"N": "1.50"},
        "ns": {"NS": ["1", "2"]},
        "ss": {"SS": ["x"]},
        "m": {"M": {"b": {"BOOL": True}, "z": {"NULL": True}, "l": {"L": [{"S": "q"}, {"N": "3"}]}}},
        "bin": {"B": b"\x00\x01"},
        "bs": {"BS": [b"ab"]},
    }
    dynamodb.put_item(TableName=TABLE, Item=rich)
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "PATCH#read"}, "sk": {"S": "2"}})
    query = {
        "TableName": TABLE,
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "PATCH#read"}},
    }
    found = dynamodb.query(**query, ReturnConsumedCapacity="TOTAL")["Items"]
    assert found[0]["bin"] == {"B": b"\x00\x01"} and found[0]["m"] == rich["m"]
    dynamodb.query(**query, Select="COUNT")
    dynamodb.query(**query, Limit=1)
    dynamodb.query(**{**query, "ExpressionAttributeValues": {":p": {"S": "PATCH#none"}}})
    dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "PATCH#read"}, "sk": {"S": "1"}})
    dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "PATCH#read"}, "sk": {"S": "9"}})
    dynamodb.batch_get_item(
        RequestItems={TABLE: {"Keys": [{"pk": {"S": "PATCH#read"}, "sk": {"S": "1"}}]}}, ReturnConsumedCapacity="TOTAL"
    )
    assert {"Query", "GetItem", "BatchGetItem"} <= set(compared)


def test_items_are_sized_once_and_refused_past_moto_limit_as_before(dynamodb, monkeypatch):
    from moto.dynamodb.models.dynamo_type import Item

    def put(size: int) -> str:
        try:
            dynamodb.put_item(
                TableName=TABLE,
                Item={"pk": {"S": "PATCH#t"}, "sk": {"S": "big"}, "a": {"S": "x" * size}, "b": {"SS": ["y", "z"]}},
            )
        except ClientError as refused:
            return refused.response["Error"]["Message"]
        return "stored"

    patched = [put(size) for size in (100, 404_900, 405_100)]
    monkeypatch.setattr(Item, "__init__", moto_patches.MOTO_ITEM_INIT)
    assert [put(size) for size in (100, 404_900, 405_100)] == patched
    assert patched[:2] == ["stored", "stored"] and "size" in patched[2]


def test_the_server_finds_a_host_backend_as_moto_does():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.server import create_backend_app

    application = DomainDispatcherApplication(create_backend_app)
    hosts = ["dynamodb.us-east-1.amazonaws.com", "sqs.us-east-1.amazonaws.com", "s3.amazonaws.com", "nowhere.example"]
    patched = [application.get_backend_for_host(host) for host in hosts]
    assert patched == [moto_patches.MOTO_BACKEND_FOR_HOST(application, host) for host in hosts]
    assert patched[:2] == ["dynamodb", "sqs"] and patched[3] is None


def test_a_kept_condition_answers_for_its_own_values(dynamodb):
    def put_if(version: str) -> bool:
        try:
            dynamodb.put_item(
                TableName=TABLE,
                Item={"pk": {"S": "PATCH#t"}, "sk": {"S": "a"}, "n": {"N": str(int(version) + 1)}},
                ConditionExpression="#n = :v",
                ExpressionAttributeNames={"#n": "n"},
                ExpressionAttributeValues={":v": {"N": version}},
            )
        except ClientError as refused:
            assert refused.response["Error"]["Code"] == "ConditionalCheckFailedException"
            return False
        return True

    assert [put_if(v) for v in ("1", "1", "2", "5", "3")] == [True, False, True, False, True]
    assert moto_patches.parsed_condition is not moto_patches.MOTO_GET_FILTER_EXPRESSION
    from moto.dynamodb.models import table

    assert table.get_filter_expression is moto_patches.parsed_condition


UPDATES = [  # (name placeholder's attribute, expression, value): each applied in turn to one item
    ("ns", "ADD #a :v", {"NS": ["3", "1", "4"]}),
    ("ns", "ADD #a :v", {"NS": ["4", "5", "9", "2"]}),  # some there already
    ("ns", "DELETE #a :v", {"NS": ["1", "7"]}),  # one not there
    ("n", "ADD #a :v", {"N": "41"}),
    ("n", "ADD #a :v", {"N": "-2.5"}),
    ("ss", "ADD #a :v", {"SS": ["x"]}),  # not there yet: moto's path
    ("ss", "ADD #a :v", {"SS": ["y", "x"]}),
    ("ss", "DELETE #a :v", {"SS": ["x", "y"]}),  # the last ones: the attribute goes
    ("ss", "DELETE #a :v", {"SS": ["x"]}),  # gone: nothing happens
    ("ns", "ADD #a :v", {"SS": ["x"]}),  # another type: moto's error
    ("n", "ADD #a :v", {"NS": ["1"]}),
    ("s", "ADD #a :v", {"S": "text"}),
    ("ns", "DELETE #a :v", {"N": "3"}),
    ("ns", "ADD #a :v", {"NS": []}),
    ("sk", "ADD #a :v", {"N": "1"}),  # a key
    ("ns", " ADD  #a  :v ", {"NS": ["8"]}),
    ("ns", "ADD #a :v, n :w", {"NS": ["6"]}),  # two clauses: moto's path (and its error on :w)
]


def test_one_clause_add_and_delete_apply_as_moto_applies_them(dynamodb, monkeypatch):
    from moto.dynamodb.models import DynamoDBBackend

    def run(sk: str) -> list:
        key = {"pk": {"S": "PATCH#t"}, "sk": {"S": sk}}
        dynamodb.put_item(TableName=TABLE, Item={**key, "ns": {"NS": ["2"]}, "n": {"N": "1"}, "s": {"S": "a"}})
        seen = []
        for attribute, expression, value in UPDATES:
            try:
                dynamodb.update_item(
                    TableName=TABLE, Key=key, UpdateExpression=expression,
                    ExpressionAttributeNames={"#a": attribute}, ExpressionAttributeValues={":v": value},
                )  # fmt: skip
                outcome = "updated"
            except ClientError as refused:
                outcome = refused.response["Error"]["Code"]
            seen.append((outcome, {k: v for k, v in item(dynamodb, sk).items() if k != "sk"}))
        update = {
            "TableName": TABLE, "Key": key, "UpdateExpression": "ADD #a :v",
            "ExpressionAttributeNames": {"#a": "ns"}, "ExpressionAttributeValues": {":v": {"NS": ["11"]}},
        }  # fmt: skip
        dynamodb.transact_write_items(TransactItems=[{"Update": update}])
        return [*seen, item(dynamodb, sk)["ns"]]

    direct = []
    apply_one_clause = moto_patches._apply_one_clause
    monkeypatch.setattr(moto_patches, "_apply_one_clause", lambda *a: direct.append(apply_one_clause(*a)) or direct[-1])
    patched = run("updated-patched")
    assert sum(applied is not None for applied in direct) == 9  # the direct path was taken where it applies
    monkeypatch.setattr(DynamoDBBackend, "update_item", moto_patches._atomic(moto_patches.MOTO_UPDATE_ITEM))
    assert run("updated-by-moto") == patched
    assert patched[1][1]["ns"] == {"NS": ["2", "3", "1", "4", "5", "9"]} and patched[7][1].get("ss") is None
    assert {outcome for outcome, _ in patched[9:15]} == {"ValidationException"}


def test_dynamodb_requests_without_binary_values_read_as_moto_reads_them(dynamodb, monkeypatch):
    from moto.dynamodb.responses import DynamoHandler

    read, moto_parse, fell_back = [], moto_patches.MOTO_PARSE_PARAMETERS, []

    def both(handler, request):
        moto_parse(handler, request)
        by_moto = handler.params
        moto_patches.parse_dynamodb_parameters(handler, request)
        read.append((handler._get_action(), by_moto, handler.params))

    monkeypatch.setattr(DynamoHandler, "parse_parameters", both)
    monkeypatch.setattr(moto_patches, "MOTO_PARSE_PARAMETERS", lambda *a: fell_back.append(1) or moto_parse(*a))
    key = {"pk": {"S": "PATCH#t"}, "sk": {"S": "every-type"}}
    every_type = {
        **key, "s": {"S": 'x "B": y'}, "n": {"N": "-1.5e3"}, "ns": {"NS": ["1", "2"]}, "ss": {"SS": ["a"]},
        "bool": {"BOOL": False}, "null": {"NULL": True}, "l": {"L": [{"N": "1"}, {"M": {"k": {"S": "v"}}}]},
        "m": {"M": {"inner": {"L": []}, "e": {"S": ""}}},
    }  # fmt: skip
    dynamodb.put_item(TableName=TABLE, Item=every_type, ReturnValues="ALL_OLD")
    projected = {"ProjectionExpression": "#s", "ExpressionAttributeNames": {"#s": "s"}}
    dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True, **projected)
    dynamodb.update_item(
        TableName=TABLE, Key=key, UpdateExpression="SET #n = #n + :one", ExpressionAttributeNames={"#n": "n"},
        ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW",
    )  # fmt: skip
    dynamodb.query(
        TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "PATCH#t"}},
        Limit=2, ScanIndexForward=False, ExclusiveStartKey=key, ReturnConsumedCapacity="TOTAL",
    )  # fmt: skip
    dynamodb.batch_get_item(RequestItems={TABLE: {"Keys": [key], "ConsistentRead": True}})
    dynamodb.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": {**key, "sk": {"S": "other"}}}}]})
    check = {"TableName": TABLE, "Key": key, "ConditionExpression": "attribute_exists(pk)"}
    dynamodb.transact_write_items(TransactItems=[{"ConditionCheck": check}])
    dynamodb.scan(TableName=TABLE, Segment=0, TotalSegments=2, Limit=1)
    dynamodb.describe_table(TableName=TABLE)
    dynamodb.put_item(TableName=TABLE, Item={**key, "sk": {"S": "binary"}, "b": {"B": b"\x00\xff"}})
    assert len(read) == 10 and len(fell_back) == 1  # only the request with a binary value took moto's path
    assert [(action, by_moto) for action, by_moto, _ in read] == [(action, mine) for action, _, mine in read]
    assert read[-1][2]["Item"]["b"]["B"] == b"\x00\xff"  # a binary value: moto's own reading, bytes
