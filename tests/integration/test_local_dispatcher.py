"""The local dispatcher behaves like Lambda's SQS event source mapping."""

import json
import threading
import time

import boto3
import pytest
from chalice import Chalice

from infra.local.dispatcher import Dispatcher, UnsupportedEventSource

MAX_RECEIVES = 3


@pytest.fixture
def queues():
    sqs = boto3.client("sqs")
    dead = sqs.create_queue(QueueName="t-work-dlq")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    work = sqs.create_queue(
        QueueName="t-work",
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": str(MAX_RECEIVES)}),
        },
    )["QueueUrl"]
    yield sqs, work, dead
    sqs.delete_queue(QueueUrl=work)
    sqs.delete_queue(QueueUrl=dead)


@pytest.fixture
def worker_app():
    app = Chalice(app_name="dispatcher-test")
    app.deliveries = []

    @app.on_sqs_message(queue="t-work", batch_size=5)
    def work(event):
        failures = []
        for record in event:
            message_id = record.to_dict()["messageId"]
            app.deliveries.append((message_id, record.body))
            if record.body == "boom":
                raise RuntimeError("whole batch fails")
            if record.body == "fail":
                failures.append({"itemIdentifier": message_id})
        return {"batchItemFailures": failures}

    return app


def send(sqs, url, *bodies):
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)


def dead_letters(sqs, url):
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return sorted(m["Body"] for m in messages)


def test_subscriptions_come_from_the_apps_event_sources(worker_app, queues):
    dispatcher = Dispatcher(worker_app, wait_seconds=0)
    (subscription,) = dispatcher.subscriptions
    assert subscription.queue_name == "t-work" and subscription.batch_size == 5
    assert subscription.queue_arn.endswith(":t-work")


def test_batch_is_real_shaped_and_successes_are_deleted(worker_app, queues):
    sqs, work, _ = queues
    send(sqs, work, "a", "b", "c")
    dispatcher = Dispatcher(worker_app, wait_seconds=0)
    captured = []
    original = worker_app.handler_map["work"]
    worker_app.handler_map["work"] = lambda event, context: captured.append(event) or original(event, context)
    assert dispatcher.drain() == 3
    records = [r for event in captured for r in event["Records"]]
    assert len({r["messageId"] for r in records}) == 3
    assert all(r["eventSource"] == "aws:sqs" and r["eventSourceARN"].endswith(":t-work") for r in records)
    assert all(r["attributes"]["ApproximateReceiveCount"] == "1" for r in records)
    assert sorted(body for _, body in worker_app.deliveries) == ["a", "b", "c"]
    time.sleep(1.1)
    assert dispatcher.drain() == 0  # nothing comes back: all were deleted


def test_one_failing_record_is_redelivered_alone_then_dead_lettered(worker_app, queues):
    sqs, work, dead = queues
    send(sqs, work, "ok-1", "fail", "ok-2")
    dispatcher = Dispatcher(worker_app, wait_seconds=0)
    (subscription,) = dispatcher.subscriptions
    dispatcher.drain()
    assert dispatcher.poll_once(subscription) == 0  # invisible until the visibility timeout passes
    for _ in range(MAX_RECEIVES + 1):
        time.sleep(1.1)
        dispatcher.drain()
    bodies = [body for _, body in worker_app.deliveries]
    assert bodies.count("ok-1") == 1 and bodies.count("ok-2") == 1
    assert bodies.count("fail") == MAX_RECEIVES
    assert dead_letters(sqs, dead) == ["fail"]


def test_handler_exception_retries_the_whole_batch_then_dead_letters(worker_app, queues):
    sqs, work, dead = queues
    send(sqs, work, "boom")
    dispatcher = Dispatcher(worker_app, wait_seconds=0)
    dispatcher.drain()
    for _ in range(MAX_RECEIVES + 1):
        time.sleep(1.1)
        dispatcher.drain()
    assert [body for _, body in worker_app.deliveries].count("boom") == MAX_RECEIVES
    assert dead_letters(sqs, dead) == ["boom"]


def test_background_pollers_deliver_and_stop_cleanly(worker_app, queues):
    sqs, work, _ = queues
    dispatcher = Dispatcher(worker_app, wait_seconds=1)
    dispatcher.start(pollers_per_queue=2)
    try:
        send(sqs, work, *[f"m{i}" for i in range(12)])
        deadline = time.monotonic() + 15
        while len(worker_app.deliveries) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        dispatcher.stop()
    assert sorted(body for _, body in worker_app.deliveries) == sorted(f"m{i}" for i in range(12))
    assert all(not thread.is_alive() for thread in dispatcher._threads)


def windowed_app(batch_size: int, window: int) -> Chalice:
    app = Chalice(app_name="dispatcher-window-test")
    app.batches = []

    @app.on_sqs_message(queue="t-work", batch_size=batch_size, maximum_batching_window_in_seconds=window)
    def work(event):
        app.batches.append(sorted(record.body for record in event))
        return {"batchItemFailures": []}

    return app


def test_with_a_batching_window_batches_grow_past_ten_as_deployed(queues):
    sqs, work, _ = queues
    send(sqs, work, *[f"m{i:02d}" for i in range(30)])
    app = windowed_app(batch_size=25, window=1)
    dispatcher = Dispatcher(app, wait_seconds=0)
    (subscription,) = dispatcher.subscriptions
    assert (subscription.batch_size, subscription.window_seconds) == (25, 1)
    assert dispatcher.drain() == 30
    assert [len(batch) for batch in app.batches] == [25, 5]
    assert sorted(body for batch in app.batches for body in batch) == [f"m{i:02d}" for i in range(30)]


def test_messages_arriving_within_the_window_join_the_batch(queues):
    sqs, work, _ = queues
    sqs.set_queue_attributes(QueueUrl=work, Attributes={"VisibilityTimeout": "30"})  # longer than the window
    app = windowed_app(batch_size=50, window=2)
    dispatcher = Dispatcher(app, wait_seconds=1)
    (subscription,) = dispatcher.subscriptions
    send(sqs, work, "first")
    late = threading.Timer(0.5, lambda: send(sqs, work, "second", "third"))
    late.start()
    assert dispatcher.poll_once(subscription) == 3  # one invocation: the window was still open
    late.join()
    assert app.batches == [["first", "second", "third"]]


def test_without_a_window_a_batch_stays_at_ten_and_more_is_refused_as_lambda_would(queues):
    sqs, work, _ = queues
    send(sqs, work, *[f"m{i:02d}" for i in range(12)])
    app = windowed_app(batch_size=10, window=0)
    assert Dispatcher(app, wait_seconds=0).drain() == 12
    assert [len(batch) for batch in app.batches] == [10, 2]
    with pytest.raises(UnsupportedEventSource):
        Dispatcher(windowed_app(batch_size=11, window=0), wait_seconds=0)
