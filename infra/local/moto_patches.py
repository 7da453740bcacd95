"""Fixes for moto's cost at scale, applied wherever this project runs moto.

Behaviour is unchanged; only work that grows with the size of a table or queue is removed:

- DynamoDB transactions: moto 5.2 backs up *every table a transaction touches*
  with ``copy.deepcopy``, so each transaction costs time proportional to the whole
  table (an import of 10,000 contacts spent minutes copying). This replacement
  keeps moto's checks, per-operation cancellation reasons and all-or-nothing
  result, but backs up and restores only the items the transaction touches. The
  loop follows moto's ``DynamoDBBackend.transact_write_items`` (Apache-2.0).
- DynamoDB queries: moto finds a partition by listing and sorting every item of
  the table; a base-table query now lists only its partition, and sorts only the
  items its sort-key condition meets.
- DynamoDB items: moto re-sums the size of every attribute of an item as it sets
  each one; an item is now sized once when it is built.
- SQS: for every message sent or received, moto rebuilds the whole attribute map
  of the queue (three scans of every message) to read one value, so sending to a
  deep queue costs time proportional to its depth. The retention check now reads
  the retention period directly, the map counts messages only when a count is
  actually read (GetQueueAttributes), a receive stops scanning once it has
  found the messages it returns, and a delete stops at the message it deletes.

- DynamoDB reads: moto serialises every response by walking botocore's shape
  model, about ten Python calls per attribute value, which made reading a
  shard of 1,000 contacts with their events take seconds. For the item reads
  (Query, Scan, GetItem, BatchGetItem), whose result is already in DynamoDB's
  wire form, the result is copied as it is (binary values base64-encoded, as
  the shape walk does); every other response still takes moto's path.

- DynamoDB conditions: moto parses a write's condition expression anew each time it
  checks it (three times a conditional write in a transaction); a parsed condition,
  which moto never changes once built, is now kept per (expression, names, values).
- DynamoDB updates: for every UpdateItem (and every Update of a transaction) moto parses the update
  expression, deep-copies its tree and walks it with ten validators before applying it: two fifths of a
  transaction's time in an import, whose updates are the tag posting lists' ``ADD #n :v`` and
  ``DELETE #n :v``. An update that is exactly one such clause, with no condition, on an attribute the item
  has, of the same type, is now applied as moto's executors apply it; anything else takes moto's path.
- DynamoDB requests: moto reads every request by walking botocore's shape model over its JSON (about
  an eighth of the server's time in an import under ``make run``), which for DynamoDB's JSON gives what
  ``json.loads`` gives except for binary values (base64 text made bytes). A request with no binary value
  (no ``"B"`` or ``"BS"`` in its body) is now read with ``json.loads``; any other takes moto's path.
- The server's dispatch: for every request, moto's server lists its own package folder and tries every
  service's URL patterns to find the backend of the request's host, under a lock every request takes —
  a tenth of the server's time during an import under ``make run``. The answer depends on the host
  alone, so it is kept per host.

One fix is about correctness, not cost: moto checks a write's condition and then
applies it without a lock, so two threads (moto server serves each request on
its own thread) can both pass ``version = 7`` and both write. DynamoDB makes a
conditional write, and a whole transaction, atomic; here one re-entrant lock
around every DynamoDB write does the same.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
import threading
from typing import Any

from moto.core.responses import BaseResponse
from moto.core.serialize import JSONSerializer
from moto.core.utils import camelcase_to_underscores, unix_time, unix_time_millis
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.comparisons import get_comparison_func, get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    ItemSizeTooLarge,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models import table as dynamodb_table
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.responses import DynamoHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Queue, SQSBackend

from infra.local import ses_simulator


def _key(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return op["Key"]
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def _backup(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
    saved = []
    for entry in transact_items:
        op_type, op = next(iter(entry.items()))
        if op.get("TableName") not in backend.tables:
            continue
        table = backend.get_table(op["TableName"])
        try:
            hash_value, range_value = backend.get_keys_value(table, _key(backend, op_type, op))
        except (KeyError, MockValidationException):
            continue
        saved.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
    return saved


def _restore(saved: list[tuple[Any, Any, Any, Any]]) -> None:
    for table, hash_value, range_value, item in reversed(saved):
        if item is None:
            table.delete_item(hash_value, range_value)
        elif range_value is not None:
            table.items[hash_value][range_value] = item
        else:
            table.items[hash_value] = item


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    saved = _backup(self, transact_items)
    target_items: set[tuple[str, str]] = set()
    errors: list[tuple[Any, Any, Any]] = []
    for entry in transact_items:
        original_item = None
        if len(list(entry.keys())) > 1:
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(entry.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            condition = op.get("ConditionExpression")
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            key = _key(self, op_type, op)
            marker = (str(table_name), str(dict(sorted(key.items()))))
            if marker in target_items:
                raise MultipleTransactionsException()
            target_items.add(marker)
            current = self.get_item(table_name, key)
            if condition is not None and not parsed_condition(condition, names, values).expr(current):
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    original_item = current.to_json()["Attributes"]
                raise ConditionalCheckFailed(item=original_item)
            common = {
                "condition_expression": condition,
                "expression_attribute_names": names,
                "expression_attribute_values": values,
            }
            if op_type == "Put":
                self.put_item(table_name, op["Item"], **common)
            elif op_type == "Delete":
                self.delete_item(table_name, key, **common)
            elif op_type == "Update":
                self.update_item(table_name, key, update_expression=op["UpdateExpression"], **common)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            _restore(saved)
            raise
        except ConditionalCheckFailed as failure:
            errors.append(("ConditionalCheckFailed", str(failure.message), original_item))
        except Exception as failure:
            errors.append((type(failure).__name__, str(failure), original_item))
    if any(code is not None for code, _, _ in errors):
        _restore(saved)
        raise TransactionCanceledException(errors)


def message_within_retention(self: SQSBackend, queue_name: str, message: Any) -> bool:
    retention_period = self.get_queue(queue_name).message_retention_period
    return retention_period + message.sent_timestamp / 1000 > unix_time()


MOTO_QUEUE_ATTRIBUTES = Queue.attributes
"""moto's own property, kept so tests can compare the two."""

_COUNTED = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


class _AttributesCountedOnRead(dict):
    """A queue's attribute map whose message counts (a scan of every message) are taken only when read.

    moto reads these maps with ``get``, ``in``, ``[]`` and ``items()``; the counts stay ``None`` in
    the underlying dict and are computed, in one pass, the first time one of those reads asks.
    """

    def __init__(self, queue: Queue, values: dict[str, Any]) -> None:
        super().__init__(values)
        self._queue = queue
        self._counts: dict[str, int] | None = None

    def _counted(self) -> dict[str, int]:
        if self._counts is None:
            now = unix_time_millis()
            ready = not_visible = delayed = 0
            for message in self._queue._messages:
                is_visible, is_delayed = now > message.visible_at, now < message.delayed_until
                ready += is_visible and not is_delayed
                not_visible += not is_visible
                delayed += is_delayed
            self._counts = dict(zip(_COUNTED, (ready, not_visible, delayed), strict=True))
        return self._counts

    def __getitem__(self, key: str) -> Any:
        return self._counted()[key] if key in _COUNTED else super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401 - this is get itself

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]  # read through __getitem__ (a list, not a view)
        return [(key, self[key]) for key in self]

    def values(self) -> list[Any]:  # type: ignore[override]  # read through __getitem__ (a list, not a view)
        return [self[key] for key in self]


@functools.cache
def _underscored(name: str) -> str:
    """moto's ``camelcase_to_underscores``, once per attribute name (a twentieth of an import's time otherwise:
    every send reads the queue's attributes)."""
    return camelcase_to_underscores(name)


def queue_attributes(self: Queue) -> dict[str, Any]:
    """moto's ``Queue.attributes``, with the message counts taken only when read."""
    names = list(self.BASE_ATTRIBUTES)
    if self.fifo_queue:
        names += self.FIFO_ATTRIBUTES
    if self.kms_master_key_id:
        names += self.KMS_ATTRIBUTES
    result: dict[str, Any] = {name: None if name in _COUNTED else getattr(self, _underscored(name)) for name in names}
    if self.policy:
        result["Policy"] = self.policy
    if self.redrive_policy:
        result["RedrivePolicy"] = json.dumps(self.redrive_policy)
    values = {key: str(value).lower() if isinstance(value, bool) else value for key, value in result.items()}
    return _AttributesCountedOnRead(self, values)


class _VisibleMessages:
    """moto's ``Queue.messages`` (visible, not delayed), computed as it is read.

    moto builds the whole filtered list on every receive, then stops after a few
    messages; this view walks a snapshot and stops when the reader does.
    """

    def __init__(self, queue: Queue) -> None:
        self._snapshot = list(queue._messages)

    def __iter__(self) -> Any:
        now = unix_time_millis()
        return (m for m in self._snapshot if now > m.visible_at and not now < m.delayed_until)

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self)


def delete_message(self: Queue, receipt_handle: str) -> None:
    """moto's ``Queue.delete_message`` without two full scans and a rebuilt list per delete."""
    if receipt_handle in self.deleted_messages:
        return  # already deleted: deleting again is fine
    for index, message in enumerate(self._messages):
        if message.had_receipt_handle(receipt_handle):
            self.pending_messages.discard(message)
            self.deleted_messages.update(message.all_receipt_handles)
            del self._messages[index]
            return
    raise ReceiptHandleIsInvalid()


MOTO_TABLE_QUERY = Table.query
MOTO_ALL_ITEMS = Table.all_items
_querying = threading.local()
ITEM_SIZE_LIMIT = 405_000
"""moto's own item size limit (dynamo_type.LimitedSizeDict)."""


def query_one_partition(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    """moto's ``Table.query``, looking only at the items that can match.

    moto finds a query's items by listing and sorting every item of the table, then
    filtering by hash key. During a base-table query, ``all_items`` now lists just
    that partition; during an index query, just the items whose index hash key has
    the queried value, unsorted (moto sorts the matches itself). The results are the
    same: moto applies its own filters to what is listed. A base-table query with a
    sort-key condition lists only the items that meet it: moto otherwise sizes every
    item of the partition on the way (its 1 MB page check comes before the condition),
    which made a ``begins_with`` read of one contact cost as much as its whole shard.
    """
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    if index_name is None:
        _querying.partition, _querying.index_key = hash_key, None
        _querying.range_condition = (args[0], args[1]) if len(args) > 1 and args[0] else None
    else:
        conditions = kwargs.get("hash_key_conditions") or []
        _querying.partition = None
        _querying.index_key = conditions[0] if len(conditions) == 1 and conditions[0][1] is not None else None
    try:
        return MOTO_TABLE_QUERY(self, hash_key, *args, **kwargs)
    finally:
        _querying.partition = _querying.index_key = _querying.range_condition = None


def all_items(self: Table) -> list[Any]:
    partition = getattr(_querying, "partition", None)
    index_key = getattr(_querying, "index_key", None)
    if partition is None and index_key is None:
        return MOTO_ALL_ITEMS(self)
    if index_key is not None:
        name, value = index_key
        every = (i for p in self.items.values() for i in (p.values() if self.range_key_attr else [p]))
        return [item for item in every if (found := item.attrs.get(name)) is not None and found == value]
    found = self.items.get(partition)
    if found is None:
        return []
    if not self.range_key_attr:
        return [found]
    # each sort key converted once (moto's own sort converts both sides of every comparison)
    keyed = [(item.range_key.cast_value, item) for item in found.values()]
    condition = getattr(_querying, "range_condition", None)
    if condition is None:
        return [item for _, item in sorted(keyed, key=_sort_key)]
    # only the items meeting a key condition are sorted (reading one contact sorted its whole shard); moto
    # also looks at the one after them (to see that the page is full and set LastEvaluatedKey), so that one
    # stays listed too
    operator, operands = condition
    meets, bounds = get_comparison_func(operator), [operand.cast_value for operand in operands]
    hits = sorted((pair for pair in keyed if meets(pair[0], *bounds)), key=_sort_key)
    if not hits:
        return []
    last = hits[-1][0]
    after = min((pair for pair in keyed if pair[0] > last), key=_sort_key, default=None)
    return [item for _, item in hits] + ([after[1]] if after else [])


def _sort_key(pair: tuple[Any, Any]) -> Any:
    return pair[0]


MOTO_ITEM_INIT = Item.__init__


def item_init(self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
    """moto's ``Item.__init__``, sizing the item once: moto sums the size of every attribute already set at
    each attribute it sets (quadratic in the attributes, a tenth of a transaction's time). Same limit."""
    self.hash_key, self.range_key = hash_key, range_key
    typed = {key: DynamoType(value) for key, value in attrs.items()}
    if sum(bytesize(key) + value.size() for key, value in typed.items()) > ITEM_SIZE_LIMIT:
        raise ItemSizeTooLarge
    self.attrs = LimitedSizeDict(typed)  # its constructor sets without checking, as copies do


_ITEM_READS = frozenset({"Query", "Scan", "GetItem", "BatchGetItem"})
_shape_serialize_result = JSONSerializer._serialize_result


def _wire(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _wire(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_wire(inner) for inner in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def serialize_item_reads(self: JSONSerializer, resp: Any, result: Any) -> Any:
    operation = self.operation_model
    if operation.service_model.service_name != "dynamodb" or operation.name not in _ITEM_READS:
        return _shape_serialize_result(self, resp, result)
    return self._serialized_result_to_response(resp, result, operation.output_shape, _wire(result))


_WRITE_LOCK = threading.RLock()


def _atomic(write: Any) -> Any:
    def locked(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with _WRITE_LOCK:
            return write(self, *args, **kwargs)

    locked.__wrapped__ = write  # type: ignore[attr-defined]  # marks the wrap, as functools.wraps would
    return locked


_original_size = DynamoType.size


def set_size(self: DynamoType) -> int:
    """moto sizes a set by wrapping every element in a DynamoType; a posting list of 2,048 numbers then
    costs milliseconds per read. Same figure as moto's, computed from the elements directly."""
    if self.is_set():
        return sum(len(str(v)) for v in self.value) if self.type[0] == "N" else sum(bytesize(v) for v in self.value)
    return _original_size(self)


MOTO_UPDATE_ITEM = DynamoDBBackend.update_item
_ONE_CLAUSE = re.compile(r"\s*(ADD|DELETE)\s+(#\w+)\s+(:\w+)\s*")


def update_item(
    self: DynamoDBBackend,
    table_name: str,
    key: dict[str, Any],
    update_expression: str,
    expression_attribute_names: dict[str, Any],
    expression_attribute_values: dict[str, Any],
    attribute_updates: dict[str, Any] | None = None,
    expected: dict[str, Any] | None = None,
    condition_expression: str | None = None,
    return_values_on_condition_check_failure: str | None = None,
) -> Any:
    """moto's ``update_item``; an unconditional one-clause ``ADD``/``DELETE`` is applied directly (module doc)."""
    if not (attribute_updates or expected or condition_expression):
        names, values = expression_attribute_names or {}, expression_attribute_values or {}
        applied = _apply_one_clause(self, table_name, key, update_expression, names, values)
        if applied is not None:
            return applied
    return MOTO_UPDATE_ITEM(
        self, table_name, key, update_expression, expression_attribute_names, expression_attribute_values,
        attribute_updates, expected, condition_expression, return_values_on_condition_check_failure,
    )  # fmt: skip


def _apply_one_clause(
    backend: DynamoDBBackend,
    table_name: str,
    key: dict[str, Any],
    expression: str | None,
    names: dict[str, Any],
    values: dict[str, Any],
) -> Item | None:
    """``ADD #n :v`` or ``DELETE #n :v`` applied to the stored item as moto's ``AddExecutor`` and
    ``DeleteExecutor`` apply it; the item, or None, having changed nothing, when the update is anything else:
    another expression, a key or index attribute, an item or attribute not there yet, another type, an empty
    set, a table with a stream (moto's path then gives its result or its error)."""
    clause = _ONE_CLAUSE.fullmatch(expression or "")
    table = backend.get_table(table_name)
    if clause is None or table.stream_shard is not None:
        return None
    action, name_placeholder, value_placeholder = clause.groups()
    name, raw = names.get(name_placeholder), values.get(value_placeholder)
    if name is None or name in table.attribute_keys or not isinstance(raw, dict):
        return None
    try:
        item = table.get_item(*backend.get_keys_value(table, key))
    except (KeyError, MockValidationException):
        return None
    current = item.attrs.get(name) if isinstance(item, Item) else None
    value = DynamoType(raw)
    if current is None or current.type != value.type:
        return None
    if value.is_set() and value.value:
        if action == "ADD":  # sets are lists in moto: new elements go at the end, in order
            present = set(current.value)
            current.value.extend(v for v in dict.fromkeys(value.value) if v not in present)
        else:
            removed = set(value.value)
            current.value[:] = [v for v in current.value if v not in removed]
            if not current.value:  # DynamoDB has no empty set: the attribute goes
                del item.attrs[name]
    elif action == "ADD" and value.is_number():
        item.attrs[name] = current + value
    else:
        return None
    return item


MOTO_PARSE_PARAMETERS = BaseResponse.parse_parameters


def parse_dynamodb_parameters(self: BaseResponse, request: Any) -> None:
    """moto's request parsing; a DynamoDB request without binary values is read as the JSON it is (module doc)."""
    body = request.data
    if body and b'"B"' not in body and b'"BS"' not in body:
        self.params = json.loads(body)
    else:
        MOTO_PARSE_PARAMETERS(self, request)


MOTO_BACKEND_FOR_HOST = DomainDispatcherApplication.get_backend_for_host
_BACKENDS: dict[str | None, Any] = {}


def backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
    """moto's answer for the host, found once (module doc). Callers hold the application's lock."""
    if host not in _BACKENDS:
        _BACKENDS[host] = MOTO_BACKEND_FOR_HOST(self, host)
    return _BACKENDS[host]


MOTO_GET_FILTER_EXPRESSION = get_filter_expression
_PARSED: dict[tuple[str, str, str], Any] = {}
_PARSED_MAX = 4_096


def parsed_condition(expression: str | None, names: dict[str, str] | None, values: dict[str, Any] | None) -> Any:
    """moto's parsed condition (module doc), kept: its nodes are only read once built."""
    if not expression:
        return MOTO_GET_FILTER_EXPRESSION(expression, names, values)
    key = (expression, json.dumps(names, sort_keys=True), json.dumps(values, sort_keys=True))
    parsed = _PARSED.get(key)
    if parsed is None:
        parsed = MOTO_GET_FILTER_EXPRESSION(expression, names, values)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = parsed
    return parsed


def apply() -> None:
    ses_simulator.install()  # not a cost fix: SES's simulator addresses, as SES answers them
    if hasattr(DynamoDBBackend.put_item, "__wrapped__"):
        return  # already applied in this process
    for name in ("put_item", "delete_item"):
        setattr(DynamoDBBackend, name, _atomic(getattr(DynamoDBBackend, name)))
    DynamoDBBackend.update_item = _atomic(update_item)  # type: ignore[method-assign]
    DynamoHandler.parse_parameters = parse_dynamodb_parameters  # type: ignore[method-assign]
    # moto's classes are patched in place: mypy refuses assigning to a method or a property, hence the ignores
    DynamoDBBackend.transact_write_items = _atomic(transact_write_items)  # type: ignore[method-assign]
    JSONSerializer._serialize_result = serialize_item_reads  # type: ignore[method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = message_within_retention  # type: ignore[method-assign]
    Queue.attributes = property(queue_attributes)  # type: ignore[assignment,method-assign]
    Queue.messages = property(_VisibleMessages)  # type: ignore[assignment,method-assign]
    Queue.delete_message = delete_message  # type: ignore[method-assign]
    Table.query = query_one_partition  # type: ignore[method-assign]
    DynamoType.size = set_size  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]
    DomainDispatcherApplication.get_backend_for_host = backend_for_host  # type: ignore[method-assign]
    Item.__init__ = item_init  # type: ignore[method-assign]
    for module in (dynamodb_models, dynamodb_table):
        module.get_filter_expression = parsed_condition  # type: ignore[attr-defined]
