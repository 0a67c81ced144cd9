"""The default sinks: the Channels sender and the database saver."""

from __future__ import annotations

import asyncio
import datetime
import gc
import logging
import threading
import time
import uuid

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import Error as DatabaseLibraryError
from django.db import connection
from django.test import override_settings

from django_integration.models import MigrationLog, MigrationTask, TaskState
from django_integration.sinks import (
    ChannelsSender,
    DatabaseSaver,
    _loops_waiting_on,
    group_name,
    log_row,
    split_by_size,
    split_runs,
)
from tests import services

#: Text that would show the sender misusing event loops or the ORM.
FORBIDDEN_LOG_TEXT = (
    "Event loop is closed",
    "Task exception was never retrieved",
    "SynchronousOnlyOperation",
    "attached to a different loop",
)


def make_message(task_id, seq, event="log", **extra):
    message = {
        "task_id": task_id,
        "seq": seq,
        "event": event,
        "message": f"line {seq}",
        "message_type": "info",
        "progress": None,
        "timestamp": datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC).isoformat(),
    }
    message.update(extra)
    return message


def make_stream(task_id, count, state="succeeded"):
    """Return a whole stream: started, ``count`` log lines, finished."""
    messages = [make_message(task_id, 1, "started")]
    for seq in range(2, count + 2):
        messages.append(make_message(task_id, seq, progress=min(seq, 99)))
    messages.append(
        make_message(
            task_id,
            count + 2,
            "finished",
            progress=100 if state == "succeeded" else 42,
            state=state,
            exit_code=0 if state == "succeeded" else 1,
            signal=None,
            error=None
            if state == "succeeded"
            else {"type": "ValueError", "message": "bad", "traceback": "tb"},
        )
    )
    return messages


def assert_clean_logs(caplog):
    for record in caplog.records:
        text = record.getMessage() + str(record.exc_text or "")
        for forbidden in FORBIDDEN_LOG_TEXT:
            assert forbidden not in text, record


# The helpers that split a list before sending.


def test_split_runs_keeps_order_per_task():
    messages = [make_message("a", 1), make_message("a", 2), make_message("b", 1)]
    messages.append(make_message("a", 3))
    runs = [[(m["task_id"], m["seq"]) for m in run] for run in split_runs(messages)]
    assert runs == [[("a", 1), ("a", 2)], [("b", 1)], [("a", 3)]]


def test_split_by_size_caps_count_and_text():
    messages = [make_message("a", seq) for seq in range(1, 451)]
    chunks = list(split_by_size(messages))
    assert [len(chunk) for chunk in chunks] == [200, 200, 50]

    big = [make_message("a", seq, message="x" * 300_000) for seq in range(1, 4)]
    assert [len(chunk) for chunk in split_by_size(big)] == [1, 1, 1]


# The database saver.


@pytest.mark.django_db
def test_saver_stores_stream_and_outcome():
    MigrationTask.objects.create(task_id="saved", target="jobs:run")
    DatabaseSaver().send_batch(make_stream("saved", 5))

    task = MigrationTask.objects.get(task_id="saved")
    assert task.state == TaskState.SUCCEEDED
    assert task.progress == 100
    assert task.message_count == 7
    assert task.exit_code == 0
    assert task.started_at is not None
    assert task.finished_at is not None
    seqs = list(task.logs.values_list("seq", flat=True))
    assert seqs == list(range(1, 8))


@pytest.mark.django_db
def test_saver_stores_failure():
    MigrationTask.objects.create(task_id="failed-run")
    DatabaseSaver().send_batch(make_stream("failed-run", 2, state="failed"))

    task = MigrationTask.objects.get(task_id="failed-run")
    assert task.state == TaskState.FAILED
    assert task.progress == 42
    assert task.exit_code == 1
    assert task.error_type == "ValueError"
    assert task.error_message == "bad"
    assert task.traceback == "tb"


@pytest.mark.django_db
def test_saver_retried_batch_writes_once():
    MigrationTask.objects.create(task_id="retried")
    saver = DatabaseSaver(batch_size=3)
    stream = make_stream("retried", 10)
    saver.send_batch(stream[:6])
    saver.send_batch(stream[:6])
    saver.send_batch(stream[4:])
    saver.send_batch(stream[4:])

    seqs = list(
        MigrationLog.objects.filter(task_id="retried").values_list("seq", flat=True)
    )
    assert seqs == list(range(1, 13))
    assert MigrationTask.objects.get(task_id="retried").message_count == 12


@pytest.mark.django_db
def test_saver_never_rewrites_final_outcome():
    MigrationTask.objects.create(task_id="final")
    saver = DatabaseSaver()
    saver.send_batch(make_stream("final", 2, state="failed"))
    before = MigrationTask.objects.get(task_id="final")

    late = make_stream("final", 2)
    late[-1]["seq"] = 99
    saver.send_batch([late[-1]])

    after = MigrationTask.objects.get(task_id="final")
    assert after.state == TaskState.FAILED
    assert after.progress == before.progress
    assert after.exit_code == before.exit_code
    assert after.finished_at == before.finished_at
    assert after.message_count == before.message_count


@pytest.mark.django_db
def test_saver_keeps_lost_task_lost():
    MigrationTask.objects.create(task_id="was-lost", state=TaskState.LOST)
    DatabaseSaver().send_batch(make_stream("was-lost", 1))
    assert MigrationTask.objects.get(task_id="was-lost").state == TaskState.LOST


@pytest.mark.django_db
def test_saver_creates_unknown_task():
    DatabaseSaver().send_batch(make_stream("started-elsewhere", 1))
    task = MigrationTask.objects.get(task_id="started-elsewhere")
    assert task.state == TaskState.SUCCEEDED
    assert task.logs.count() == 3


@pytest.mark.django_db
def test_saver_keeps_options_and_outcome():
    MigrationTask.objects.create(task_id="options")
    message = make_message("options", 1, sheet="Sales", rows=[1, 2], nested={"a": 1})
    DatabaseSaver().send_batch([message])
    log = MigrationLog.objects.get(task_id="options")
    assert log.options == {"sheet": "Sales", "rows": [1, 2], "nested": {"a": 1}}
    assert log.to_message() == message


@pytest.mark.django_db
def test_saver_records_dropped_count():
    MigrationTask.objects.create(task_id="dropping")
    saver = DatabaseSaver(dropped_count=lambda task_id: 5)
    saver.send_batch([make_message("dropping", 1, "started")])
    assert MigrationTask.objects.get(task_id="dropping").dropped == 5


@pytest.mark.django_db
def test_saver_interleaved_tasks():
    MigrationTask.objects.create(task_id="first")
    MigrationTask.objects.create(task_id="second")
    first, second = make_stream("first", 3), make_stream("second", 3)
    mixed = [m for pair in zip(first, second, strict=True) for m in pair]
    DatabaseSaver().send_batch(mixed)
    for task_id in ("first", "second"):
        task = MigrationTask.objects.get(task_id=task_id)
        assert task.state == TaskState.SUCCEEDED
        assert task.logs.count() == 5


@pytest.mark.django_db(transaction=True)
def test_saver_reconnects_after_broken_connection():
    """A dead connection fails one call; the retry opens a new connection."""
    MigrationTask.objects.create(task_id="reconnect")
    saver = DatabaseSaver()
    stream = make_stream("reconnect", 3)
    saver.send_batch(stream[:2])

    connection.ensure_connection()
    connection.connection.close()
    with pytest.raises(DatabaseLibraryError, match=r"(?i)closed"):
        saver.send_batch(stream[2:])

    saver.send_batch(stream[2:])
    task = MigrationTask.objects.get(task_id="reconnect")
    assert task.state == TaskState.SUCCEEDED
    assert task.logs.count() == 5
    saver.close()


#: Text and options that COPY's text format must escape: tabs, newlines,
#: backslashes, non-ASCII, a literal "\\N", and nested JSON.
HOSTILE_TEXT = "tab\there\nnew line\r\\N back\\slash \\. end ünï 日本 🎉"
HOSTILE_OPTIONS = {
    "path": "C:\\temp\\new\tfile",
    "nested": {"list": [1, 2.5, None, True, "x\ny"], "quote": "\"'", "empty": {}},
    "emoji": "🎉",
    "big": 2**53,
}


def _stored_values(task_id):
    rows = MigrationLog.objects.filter(task_id=task_id).order_by("seq")
    return [
        (r.seq, r.event, r.message, r.message_type, r.progress, r.timestamp, r.options)
        for r in rows
    ]


@pytest.mark.services_backend
@pytest.mark.django_db(transaction=True)
def test_saver_copy_matches_bulk_create():
    """On PostgreSQL the saver's COPY stores the same rows as ``bulk_create``."""
    services.require_postgres()
    assert connection.vendor == "postgresql"
    stream = make_stream("copied", 3)
    for message in stream[1:-1]:
        message.update(message=HOSTILE_TEXT, **HOSTILE_OPTIONS)
    MigrationTask.objects.create(task_id="copied")
    MigrationTask.objects.create(task_id="created")
    DatabaseSaver().send_batch(stream)
    MigrationLog.objects.bulk_create(
        [log_row({**message, "task_id": "created"}) for message in stream]
    )

    assert _stored_values("copied") == _stored_values("created")
    stored = [log.to_message() for log in MigrationLog.objects.filter(task_id="copied")]
    assert stored == stream


@pytest.mark.services_backend
@pytest.mark.django_db(transaction=True)
def test_saver_copy_retry_writes_once():
    """Batches seen again, each in its own transaction, store each seq once."""
    services.require_postgres()
    MigrationTask.objects.create(task_id="copy-retried")
    saver = DatabaseSaver()
    stream = make_stream("copy-retried", 10)
    for batch in (stream[:6], stream[:6], stream[4:], stream[4:], stream):
        saver.send_batch(batch)

    seqs = list(
        MigrationLog.objects.filter(task_id="copy-retried").values_list(
            "seq", flat=True
        )
    )
    assert seqs == list(range(1, 13))
    task = MigrationTask.objects.get(task_id="copy-retried")
    assert task.state == TaskState.SUCCEEDED
    assert task.message_count == 12
    saver.close()


# The Channels sender.


async def receive_all(layer, channel, count, timeout=20.0):
    """Receive group messages until ``count`` stream messages arrived."""
    received = []
    async with asyncio.timeout(timeout):
        while len(received) < count:
            event = await layer.receive(channel)
            if event["type"] == "log_batch":
                received.extend(event["messages"])
            else:
                assert event["type"] == "log_message"
                received.append(event["message"])
    return received


async def join_group(layer, task_id):
    channel = await layer.new_channel()
    await layer.group_add(group_name(task_id), channel)
    return channel


@pytest.mark.parametrize("batch_send", [True, False])
async def test_sender_delivers_in_order(batch_send, caplog):
    caplog.set_level(logging.WARNING)
    layer = get_channel_layer()
    task_id = f"send-{uuid.uuid4().hex[:8]}"
    channel = await join_group(layer, task_id)
    sender = ChannelsSender(batch_send=batch_send)
    messages = make_stream(task_id, 40)
    try:
        receiving = asyncio.ensure_future(receive_all(layer, channel, len(messages)))
        await asyncio.to_thread(sender.send_batch, messages)
        received = await receiving
    finally:
        await asyncio.to_thread(sender.close)
    assert [m["seq"] for m in received] == [m["seq"] for m in messages]
    assert received[-1]["state"] == "succeeded"
    assert_clean_logs(caplog)


async def test_sender_event_types():
    layer = get_channel_layer()
    task_id = f"types-{uuid.uuid4().hex[:8]}"
    channel = await join_group(layer, task_id)
    messages = make_stream(task_id, 3)

    sender = ChannelsSender(batch_send=True)
    await asyncio.to_thread(sender.send_batch, messages)
    batch = await asyncio.wait_for(layer.receive(channel), 10)
    await asyncio.to_thread(sender.send_batch, [make_message(task_id, 6)])
    single = await asyncio.wait_for(layer.receive(channel), 10)
    await asyncio.to_thread(sender.close)

    assert batch["type"] == "log_batch"
    assert batch["messages"] == messages
    assert single == {"type": "log_message", "message": make_message(task_id, 6)}


async def test_sender_interleaved_tasks_each_in_order():
    layer = get_channel_layer()
    ids = [f"mix{n}-{uuid.uuid4().hex[:8]}" for n in range(3)]
    channels = [await join_group(layer, task_id) for task_id in ids]
    streams = [make_stream(task_id, 20) for task_id in ids]
    mixed = [m for group in zip(*streams, strict=True) for m in group]

    sender = ChannelsSender(batch_send=False, concurrency=2)
    receivers = [
        asyncio.ensure_future(receive_all(layer, channel, 22)) for channel in channels
    ]
    await asyncio.to_thread(sender.send_batch, mixed)
    results = [await receiver for receiver in receivers]
    await asyncio.to_thread(sender.close)

    for stream, received in zip(streams, results, strict=True):
        assert received == stream


async def test_sender_wakes_idle_receiver():
    """A consumer whose event loop sleeps in receive() gets the message at once."""
    layer = get_channel_layer()
    task_id = f"idle-{uuid.uuid4().hex[:8]}"
    channel = await join_group(layer, task_id)
    sender = ChannelsSender()

    def send_once_waiting():
        if isinstance(layer, InMemoryChannelLayer):
            deadline = time.monotonic() + 10
            while not _loops_waiting_on(layer) and time.monotonic() < deadline:
                time.sleep(0.01)
        sender.send_batch([make_message(task_id, 1)])

    thread = threading.Thread(target=send_once_waiting)
    thread.start()
    started = time.monotonic()
    try:
        # Nothing but the sender can wake this loop before the timeout.
        event = await asyncio.wait_for(layer.receive(channel), 20)
    finally:
        thread.join()
        sender.close()
    assert event["message"]["seq"] == 1
    assert time.monotonic() - started < 10


def test_sender_close_twice_and_reject_after():
    sender = ChannelsSender()
    sender.send_batch([make_message("closed-sender", 1)])
    sender.close()
    sender.close()
    with pytest.raises(RuntimeError, match="closed"):
        sender.send_batch([make_message("closed-sender", 2)])


def test_sender_invalid_concurrency():
    with pytest.raises(ValueError, match="concurrency 0"):
        ChannelsSender(concurrency=0)


def redis_clients(client, name):
    return [c for c in client.client_list() if c.get("name") == name]


@pytest.mark.redis
@pytest.mark.parametrize("batch_send", [True, False])
def test_sender_redis_thousand_messages(batch_send, caplog):
    """1,000 messages through channels-redis: in order, clean logs, flat connections."""
    import redis
    from channels_redis.core import RedisChannelLayer

    url = services.require_redis()
    caplog.set_level(logging.DEBUG)
    prefix = f"sinktest{uuid.uuid4().hex[:8]}"
    client_name = f"{prefix}-sender"
    layers = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"},
        "sink-test": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {"address": url, "client_name": client_name, "socket_timeout": None}
                ],
                "prefix": prefix,
                "capacity": 5000,
            },
        },
    }
    task_id = f"redis-{uuid.uuid4().hex[:8]}"
    messages = make_stream(task_id, 998)
    receiver_layer = RedisChannelLayer(hosts=[url], prefix=prefix, capacity=5000)
    admin = redis.Redis.from_url(url)

    async def scenario():
        channel = await join_group(receiver_layer, task_id)
        receiving = asyncio.ensure_future(
            receive_all(receiver_layer, channel, len(messages), timeout=60)
        )
        await asyncio.to_thread(sender.send_batch, messages[:100])
        counts = [len(redis_clients(admin, client_name))]
        for start in range(100, len(messages), 100):
            await asyncio.to_thread(sender.send_batch, messages[start : start + 100])
            counts.append(len(redis_clients(admin, client_name)))
        received = await receiving
        await receiver_layer.flush()
        return counts, received

    with override_settings(CHANNEL_LAYERS=layers):
        sender = ChannelsSender(batch_send=batch_send, layer_alias="sink-test")
        try:
            counts, received = asyncio.run(scenario())
        finally:
            sender.close()
    gc.collect()

    assert [m["seq"] for m in received] == list(range(1, 1001))
    assert 1 <= counts[0] <= 2
    assert set(counts) == {counts[0]}
    assert redis_clients(admin, client_name) == []
    assert_clean_logs(caplog)
    admin.close()
