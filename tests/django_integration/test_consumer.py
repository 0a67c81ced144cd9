"""The WebSocket consumer: access, snapshot and replay, live order, client frames."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from django_integration import aget_status, consumers, start_migration
from django_integration.consumers import MigrationConsumer
from django_integration.models import MigrationLog, MigrationTask, SupervisorProcess
from tests.asgi import application
from tests.django_integration.web_helpers import (
    CANCEL,
    FRAME_TIMEOUT,
    WATCH,
    close_code,
    frame_messages,
    group_send,
    make_message,
    make_task,
    make_user,
    open_socket,
    receive,
    receive_until_finished,
    seqs,
    store_messages,
)
from tests.django_integration.web_jobs import (
    HOSTILE_MESSAGE,
    HOSTILE_OPTION,
)

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = (
    Path(__file__).resolve().parents[2]
    / "django_integration/static/django_integration/migration.js"
)

#: Log text that would mean the sender or consumer misused asyncio or the ORM.
FORBIDDEN_LOG_TEXT = (
    "Event loop is closed",
    "Task exception was never retrieved",
    "SynchronousOnlyOperation",
)


@pytest.fixture
async def channel_layer() -> AsyncIterator[Any]:
    """The default channel layer, emptied before and after the test."""
    layer = get_channel_layer()
    await layer.flush()
    yield layer
    await layer.flush()


@pytest.fixture
async def sockets(channel_layer: Any) -> AsyncIterator[list[WebsocketCommunicator]]:
    """A list the test appends its sockets to; each is disconnected afterwards.

    The sockets close before the channel layer is flushed, because flushing
    channels-redis also closes its connections.
    """
    opened: list[WebsocketCommunicator] = []
    yield opened
    for socket in opened:
        # NOTE: with redis-py 8.2 and channels-redis 4.3, a consumer stopped
        # within milliseconds of starting a receive can lose the cancel. It
        # then waits out the 5 s BZPOPMIN timeout and raises TimeoutError. This
        # happens to a receive that just started, or that took over when another
        # consumer of the process stopped. The cause: redis-py 8 has a default
        # socket timeout of 5 s, so it writes each command through
        # asyncio.wait_for, and on Python 3.11 wait_for drops a cancel that
        # arrives as the write completes (Python 3.12 fixed it). A host entry
        # with "socket_timeout": None in CHANNEL_LAYERS avoids it. The pauses
        # keep the tests clear of it.
        await asyncio.sleep(0.05)
        await socket.disconnect(timeout=FRAME_TIMEOUT)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the consumer give up on a gap, and poll the database, within 0.1 s."""
    monkeypatch.setattr(MigrationConsumer, "gap_retry_delays", (0.02, 0.02, 0.02))
    monkeypatch.setattr(MigrationConsumer, "first_poll_delay", 0.05)
    monkeypatch.setattr(MigrationConsumer, "poll_interval", 0.05)
    monkeypatch.setattr(MigrationConsumer, "max_poll_interval", 0.1)


async def create_user(*permissions: str):
    return await database_sync_to_async(make_user)(*permissions)


async def create_task(owner, state: str = "running", **fields) -> MigrationTask:
    return await database_sync_to_async(make_task)(owner, state, **fields)


async def store(task_id: str, seq_range) -> None:
    await database_sync_to_async(store_messages)(task_id, seq_range)


async def expect_quiet(socket: WebsocketCommunicator) -> None:
    """Check that nothing but the pong for a ping is waiting on the socket."""
    await socket.send_json_to({"action": "ping"})
    assert await receive(socket) == {"type": "pong"}


# Who may watch.


async def test_owner_receives_snapshot(sockets):
    owner = await create_user()
    task = await create_task(owner)
    await store(task.task_id, range(1, 4))
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)

    snapshot = await receive(socket)

    assert snapshot["type"] == "snapshot"
    assert snapshot["task"]["task_id"] == task.task_id
    assert snapshot["task"]["state"] == "running"
    assert [m["seq"] for m in snapshot["messages"]] == [1, 2, 3]
    assert snapshot["messages"][0]["message"] == "line 1"


async def test_watch_permission_lets_other_user_watch(sockets):
    task = await create_task(await create_user())
    watcher = await create_user(WATCH)
    socket = await open_socket(task.task_id, watcher)
    sockets.append(socket)

    assert (await receive(socket))["type"] == "snapshot"


async def test_other_user_closed_with_4403(sockets):
    task = await create_task(await create_user())
    socket = await open_socket(task.task_id, await create_user(CANCEL))
    sockets.append(socket)

    assert await close_code(socket) == 4403


async def test_anonymous_closed_with_4403(sockets):
    task = await create_task(await create_user())
    socket = await open_socket(task.task_id)
    sockets.append(socket)

    assert await close_code(socket) == 4403


async def test_unknown_task_closed_with_4404(sockets):
    socket = await open_socket("no-such-task", await create_user(WATCH))
    sockets.append(socket)

    assert await close_code(socket) == 4404


@pytest.mark.parametrize("task_id", ["bad.id", "x" * 65, "semi;colon"])
async def test_invalid_task_id_closed_with_4400(sockets, task_id):
    socket = await open_socket(task_id, await create_user(WATCH))
    sockets.append(socket)

    assert await close_code(socket) == 4400


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "99999999999"])
async def test_invalid_after_closed_with_4400(sockets, after):
    owner = await create_user()
    task = await create_task(owner)
    socket = await open_socket(task.task_id, owner, query=f"?after={after}")
    sockets.append(socket)

    assert await close_code(socket) == 4400


async def test_accept_before_access_check(sockets, monkeypatch):
    """The socket is accepted while the access check still waits for the database."""
    owner = await create_user()
    task = await create_task(owner)
    release = asyncio.Event()
    check_access = consumers._check_watch_access

    async def slow_check(user, task_id):
        await release.wait()
        return await check_access(user, task_id)

    monkeypatch.setattr(consumers, "_check_watch_access", slow_check)
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    assert await socket.receive_nothing(timeout=0.1)

    release.set()
    assert (await receive(socket))["type"] == "snapshot"


async def test_rejected_watcher_closed_after_accept(sockets, monkeypatch):
    task = await create_task(await create_user())
    release = asyncio.Event()
    check_access = consumers._check_watch_access

    async def slow_check(user, task_id):
        await release.wait()
        return await check_access(user, task_id)

    monkeypatch.setattr(consumers, "_check_watch_access", slow_check)
    socket = await open_socket(task.task_id, await create_user())
    sockets.append(socket)

    release.set()
    assert await close_code(socket) == 4403


async def test_foreign_origin_refused_at_handshake(channel_layer):
    owner = await create_user()
    task = await create_task(owner)
    socket = WebsocketCommunicator(
        application,
        f"/ws/migration/{task.task_id}/",
        headers=[(b"origin", b"http://evil.example")],
    )

    connected, _ = await socket.connect(timeout=5)

    assert not connected


# Snapshot, replay and the live stream.


async def test_after_limits_snapshot(sockets):
    owner = await create_user()
    task = await create_task(owner)
    await store(task.task_id, range(1, 6))
    socket = await open_socket(task.task_id, owner, query="?after=2")
    sockets.append(socket)

    snapshot = await receive(socket)

    assert [m["seq"] for m in snapshot["messages"]] == [3, 4, 5]


async def test_live_messages_in_snapshot_dropped(sockets):
    owner = await create_user()
    task = await create_task(owner)
    await store(task.task_id, range(1, 4))
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    await receive(socket)

    batch = [make_message(task.task_id, seq) for seq in (2, 3, 4, 5)]
    await group_send(task.task_id, {"type": "log_batch", "messages": batch})
    await group_send(
        task.task_id, {"type": "log_message", "message": make_message(task.task_id, 5)}
    )

    frame = await receive(socket)
    assert frame["type"] == "logs"
    assert [m["seq"] for m in frame["messages"]] == [4, 5]
    await expect_quiet(socket)


async def test_mid_stream_join_has_no_gap_or_duplicate(sockets):
    """A watcher joining while messages flow sees each seq once, in order."""
    owner = await create_user()
    task = await create_task(owner)
    await store(task.task_id, range(1, 21))
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    # The consumer joins the group before it reads the snapshot.
    frames = [await receive(socket)]

    # The live stream overlaps the snapshot and arrives partly out of order.
    for seqs_sent in ((15, 16, 17, 18, 19, 20, 21, 22), (23,), (21, 24, 25)):
        batch = [make_message(task.task_id, seq) for seq in seqs_sent]
        await group_send(task.task_id, {"type": "log_batch", "messages": batch})
    frames += [await receive(socket) for _ in range(3)]

    assert frames[0]["type"] == "snapshot"
    assert seqs(frames) == list(range(1, 26))
    await expect_quiet(socket)


async def test_live_message_ahead_of_database_waits_for_gap(sockets):
    owner = await create_user()
    task = await create_task(owner)
    await store(task.task_id, range(1, 4))
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    await receive(socket)

    async def store_late() -> None:
        await asyncio.sleep(0.3)
        await store(task.task_id, range(4, 7))

    saver = asyncio.create_task(store_late())
    await group_send(
        task.task_id, {"type": "log_message", "message": make_message(task.task_id, 7)}
    )
    frame = await receive(socket)
    await saver

    assert frame["type"] == "logs"
    assert [m["seq"] for m in frame["messages"]] == [4, 5, 6, 7]
    assert frame["messages"][0]["message"] == "line 4"


async def test_unfilled_gap_sends_note_then_replay(sockets, fast_retries):
    owner = await create_user()
    task = await create_task(owner)
    await store(task.task_id, range(1, 3))
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    await receive(socket)

    await group_send(
        task.task_id, {"type": "log_message", "message": make_message(task.task_id, 5)}
    )

    assert await receive(socket) == {"type": "gap", "after": 2, "before": 5}
    assert (await receive(socket))["message"]["seq"] == 5

    await store(task.task_id, range(3, 5))
    await socket.send_json_to({"action": "replay", "after": 2, "before": 5})
    replay = await receive(socket)
    assert replay["type"] == "replay"
    assert [m["seq"] for m in replay["messages"]] == [3, 4]


async def test_open_gap_stops_waiting_on_later_gaps(sockets, fast_retries, monkeypatch):
    """Once a gap stayed open, the next gap gets one database read, not retries."""
    reads = []

    async def counting_read(task_id, after, before):
        reads.append((after, before))
        return await original_read(task_id, after, before)

    original_read = consumers._read_messages
    monkeypatch.setattr(consumers, "_read_messages", counting_read)
    owner = await create_user()
    task = await create_task(owner)
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    await receive(socket)

    for seq in (3, 6):
        message = make_message(task.task_id, seq)
        await group_send(task.task_id, {"type": "log_message", "message": message})
        await receive(socket)
        await receive(socket)

    assert reads.count((0, 3)) == 4
    assert reads.count((3, 6)) == 1


async def test_snapshot_waits_for_unstored_tail(sockets):
    """Messages counted by the status but not stored yet follow the snapshot."""
    owner = await create_user()
    task = await create_task(owner, message_count=6)
    await store(task.task_id, range(1, 5))

    async def store_late() -> None:
        await asyncio.sleep(0.3)
        await store(task.task_id, range(5, 7))

    saver = asyncio.create_task(store_late())
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    frames = [await receive(socket), await receive(socket)]
    await saver

    assert seqs(frames) == [1, 2, 3, 4, 5, 6]


async def test_poll_sends_messages_no_live_event_brought(sockets, fast_retries):
    owner = await create_user()
    task = await create_task(owner)
    await store(task.task_id, range(1, 3))
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    await receive(socket)

    await store(task.task_id, range(3, 5))
    frame = await receive(socket)

    assert [m["seq"] for m in frame["messages"]] == [3, 4]


async def test_first_poll_soon_after_snapshot(sockets, monkeypatch):
    """The database is read for missed messages soon after the snapshot.

    The interval is set to ten minutes, so only the first poll's short delay
    can bring the second read within the test's few seconds.
    """
    monkeypatch.setattr(MigrationConsumer, "poll_interval", 600.0)
    monkeypatch.setattr(MigrationConsumer, "max_poll_interval", 600.0)
    reads: list[int] = []
    polled = asyncio.Event()
    read_snapshot = consumers._read_snapshot

    async def counted_read(task_id, after, limit):
        reads.append(after)
        if len(reads) == 2:
            polled.set()
        return await read_snapshot(task_id, after, limit)

    monkeypatch.setattr(consumers, "_read_snapshot", counted_read)
    owner = await create_user()
    task = await create_task(owner)
    await store(task.task_id, range(1, 3))
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    await receive(socket)

    await asyncio.wait_for(polled.wait(), timeout=FRAME_TIMEOUT)
    assert reads == [0, 2]


async def test_task_lost_without_finished_sends_status(sockets, fast_retries):
    owner = await create_user()
    task = await create_task(owner)
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    await receive(socket)

    await database_sync_to_async(MigrationTask.objects.filter(pk=task.pk).update)(
        state="lost", error_type="lost", error_message="no heartbeat"
    )
    frame = await receive(socket)

    assert frame["type"] == "status"
    assert frame["task"]["state"] == "lost"
    assert frame["task"]["error"]["type"] == "lost"


async def test_watcher_gets_lost_task_finished(sockets, runtime):
    """A status read elsewhere marks the task lost; the watcher gets its end live."""
    owner = await create_user()
    await database_sync_to_async(SupervisorProcess.objects.create)(
        process_id="host:15:gone", hostname="host", pid=15
    )
    task = await create_task(owner, supervised_by="host:15:gone", message_count=2)
    await store(task.task_id, range(1, 3))
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    snapshot = await receive(socket)
    assert snapshot["task"]["state"] == "running"

    await database_sync_to_async(
        SupervisorProcess.objects.filter(process_id="host:15:gone").update
    )(heartbeat_at=timezone.now() - datetime.timedelta(hours=1))
    await database_sync_to_async(runtime.reset)()
    status = await aget_status(task.task_id)
    frame = await receive(socket)

    assert status.state == "lost"
    assert frame["type"] == "log"
    assert frame["message"]["seq"] == 3
    assert frame["message"]["event"] == "finished"
    assert frame["message"]["state"] == "lost"
    await expect_quiet(socket)


async def test_join_after_end_gets_whole_stream(sockets):
    owner = await create_user()
    task = await create_task(owner, state="succeeded", progress=100, message_count=4)
    await store(task.task_id, range(1, 4))
    await database_sync_to_async(MigrationLog.objects.create)(
        task_id=task.task_id,
        seq=4,
        event="finished",
        message="succeeded",
        progress=100,
        timestamp=task.created_at,
        options={"state": "succeeded", "exit_code": 0, "signal": None, "error": None},
    )
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)

    snapshot = await receive(socket)

    assert snapshot["task"]["state"] == "succeeded"
    assert [m["seq"] for m in snapshot["messages"]] == [1, 2, 3, 4]
    assert snapshot["messages"][-1]["event"] == "finished"
    assert snapshot["messages"][-1]["state"] == "succeeded"
    await expect_quiet(socket)


# Frame sizes: long streams go out in frames Daphne accepts.

#: Daphne closes a socket that is sent a frame larger than this.
DAPHNE_FRAME_LIMIT = 1024 * 1024


def store_large(task_id: str, seq_range, size: int) -> None:
    MigrationLog.objects.bulk_create(
        MigrationLog(
            task_id=task_id,
            seq=seq,
            event="log",
            message=f"{seq:06d}" + "é" * size,
            timestamp=datetime.datetime.fromisoformat(
                make_message(task_id, seq)["timestamp"]
            ),
        )
        for seq in seq_range
    )


async def receive_raw(socket: WebsocketCommunicator) -> tuple[int, dict[str, Any]]:
    """Return the next frame's size in bytes and its decoded content."""
    text = await socket.receive_from(timeout=FRAME_TIMEOUT)
    return len(text.encode()), json.loads(text)


async def receive_raw_through(
    socket: WebsocketCommunicator, last_seq: int
) -> list[tuple[int, dict[str, Any]]]:
    """Collect frames until one carries ``last_seq``."""
    frames: list[tuple[int, dict[str, Any]]] = []
    while last_seq not in seqs(frame for _, frame in frames):
        frames.append(await receive_raw(socket))
    return frames


def assert_frames_fit(frames: list[tuple[int, dict[str, Any]]]) -> None:
    for size, frame in frames:
        assert size <= consumers.MAX_FRAME_BYTES + 4096, (frame["type"], size)
        assert size < DAPHNE_FRAME_LIMIT


async def test_large_snapshot_frames_under_limit(sockets):
    """2.4 MB of stored lines reach a late watcher in order, in small frames."""
    owner = await create_user()
    task = await create_task(owner, message_count=300)
    # Two-byte characters: 8 KB of UTF-8 per line.
    await database_sync_to_async(store_large)(task.task_id, range(1, 301), 4000)
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)

    frames = await receive_raw_through(socket, 300)

    assert frames[0][1]["type"] == "snapshot"
    assert frames[0][1]["task"]["state"] == "running"
    assert {frame["type"] for _, frame in frames[1:]} <= {"log", "logs"}
    assert len(frames) >= 10
    assert_frames_fit(frames)
    messages = [m for _, frame in frames for m in frame_messages(frame)]
    assert [m["seq"] for m in messages] == list(range(1, 301))
    assert messages[299]["message"].startswith("000300é")
    await expect_quiet(socket)


async def test_snapshot_read_in_pages_in_order(sockets, monkeypatch):
    reads = []

    def counting_page(task_id, after, before=None, limit=consumers.PAGE_ROWS):
        page = consumers.read_page(task_id, after, before, limit)
        reads.append(len(page))
        return page

    monkeypatch.setattr(MigrationConsumer, "page_rows", 7)
    monkeypatch.setattr(consumers, "_read_page", database_sync_to_async(counting_page))
    owner = await create_user()
    task = await create_task(owner, message_count=30)
    await store(task.task_id, range(1, 31))
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)

    frames = [await receive(socket)]
    while 30 not in seqs(frames):
        frames.append(await receive(socket))

    assert seqs(frames) == list(range(1, 31))
    assert [m["seq"] for m in frames[0]["messages"]] == list(range(1, 8))
    # The first page comes with the status; each later read is one page.
    assert reads == [7, 7, 7, 2]
    await expect_quiet(socket)


async def test_long_gap_read_in_pages(sockets, monkeypatch):
    """A live message far ahead of the snapshot brings the stored ones page by page."""
    pages = []
    ranges = []

    async def counting_page(task_id, after, before=None, limit=consumers.PAGE_ROWS):
        page = await original_page(task_id, after, before, limit)
        pages.append(len(page))
        return page

    async def counting_read(task_id, after, before):
        ranges.append((after, before))
        return await original_read(task_id, after, before)

    original_page, original_read = consumers._read_page, consumers._read_messages
    monkeypatch.setattr(consumers, "_read_page", counting_page)
    monkeypatch.setattr(consumers, "_read_messages", counting_read)
    monkeypatch.setattr(MigrationConsumer, "page_rows", 7)
    owner = await create_user()
    task = await create_task(owner)
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    await receive(socket)

    await store(task.task_id, range(1, 30))
    message = make_message(task.task_id, 30)
    await group_send(task.task_id, {"type": "log_message", "message": message})
    frames = [await receive(socket)]
    while 30 not in seqs(frames):
        frames.append(await receive(socket))

    assert seqs(frames) == list(range(1, 31))
    assert pages == [7, 7, 7, 7]
    assert ranges == [(28, 30)]
    await expect_quiet(socket)


async def test_large_live_batch_frames_under_limit(sockets):
    owner = await create_user()
    task = await create_task(owner)
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    await receive(socket)

    batch = [
        make_message(task.task_id, seq, message="€" * 5000, blob="x" * 3000)
        for seq in range(1, 201)
    ]
    await group_send(task.task_id, {"type": "log_batch", "messages": batch})
    frames = await receive_raw_through(socket, 200)

    assert len(frames) >= 10
    assert_frames_fit(frames)
    assert seqs(frame for _, frame in frames) == list(range(1, 201))
    assert all(m["blob"] == "x" * 3000 for _, f in frames for m in frame_messages(f))


async def test_oversized_message_sent_alone(sockets):
    owner = await create_user()
    task = await create_task(owner)
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    await receive(socket)

    huge = "ü" * (consumers.MAX_FRAME_BYTES // 2 + 1000)
    batch = [
        make_message(task.task_id, 1),
        make_message(task.task_id, 2, message=huge),
        make_message(task.task_id, 3),
    ]
    await group_send(task.task_id, {"type": "log_batch", "messages": batch})
    frames = [await receive(socket) for _ in range(3)]

    assert [frame["type"] for frame in frames] == ["log", "log", "log"]
    assert seqs(frames) == [1, 2, 3]
    assert frames[1]["message"]["message"] == huge


async def test_large_replay_ends_with_replay_frame(sockets, fast_retries):
    owner = await create_user()
    task = await create_task(owner)
    socket = await open_socket(task.task_id, owner, query="?after=300")
    sockets.append(socket)
    await receive(socket)
    await database_sync_to_async(store_large)(task.task_id, range(1, 301), 4000)

    await socket.send_json_to({"action": "replay", "after": 0, "before": 301})
    frames = await receive_raw_through(socket, 300)

    assert_frames_fit(frames)
    assert [frame["type"] for _, frame in frames[:-1]] == ["logs"] * (len(frames) - 1)
    assert frames[-1][1]["type"] == "replay"
    assert (frames[-1][1]["after"], frames[-1][1]["before"]) == (0, 301)
    assert seqs(frame for _, frame in frames) == list(range(1, 301))


def test_chunks_keep_order_and_size():
    messages = [{"seq": seq, "message": "a" * 1000} for seq in range(1, 1001)]

    chunks = [
        orjson.dumps(chunk)
        for chunk in consumers.chunk_messages(messages, first_room=10_000)
    ]

    assert len(chunks[0]) <= 10_000
    assert max(len(chunk) for chunk in chunks) <= consumers.MAX_FRAME_BYTES
    assert [m for chunk in chunks for m in json.loads(chunk)] == messages


# Frames from the browser.


async def test_ping_answered_with_pong(sockets):
    owner = await create_user()
    socket = await open_socket((await create_task(owner)).task_id, owner)
    sockets.append(socket)
    await receive(socket)

    await socket.send_json_to({"action": "ping"})

    assert await receive(socket) == {"type": "pong"}


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('"cancel"', "expected a JSON object, got str"),
        ('{"action": "explode"}', "unknown action 'explode'"),
        ('{"no_action": 1}', "unknown action None"),
        ('{"action": "' + "x" * 5000 + '"}', "frame of 5014 characters is too long"),
        ('{"action": "replay", "after": -3}', "invalid replay after -3"),
        ('{"action": "replay", "after": 5, "before": 2}', "invalid replay before 2"),
    ],
)
async def test_malformed_frame_gets_error_and_socket_stays(sockets, frame, expected):
    owner = await create_user()
    socket = await open_socket((await create_task(owner)).task_id, owner)
    sockets.append(socket)
    await receive(socket)

    await socket.send_to(text_data=frame)
    answer = await receive(socket)

    assert answer["type"] == "error"
    assert expected in answer["message"]
    await expect_quiet(socket)


async def test_binary_frame_gets_error(sockets):
    owner = await create_user()
    socket = await open_socket((await create_task(owner)).task_id, owner)
    sockets.append(socket)
    await receive(socket)

    await socket.send_to(bytes_data=b'{"action": "ping"}')
    answer = await receive(socket)

    assert answer["type"] == "error"
    assert "binary frames are not accepted" in answer["message"]
    await expect_quiet(socket)


async def test_cancel_refused_without_permission(sockets):
    task = await create_task(await create_user())
    watcher = await create_user(WATCH)
    socket = await open_socket(task.task_id, watcher)
    sockets.append(socket)
    await receive(socket)

    await socket.send_json_to({"action": "cancel"})
    answer = await receive(socket)

    assert answer["type"] == "cancel_result"
    assert answer["accepted"] is False
    assert CANCEL in answer["message"]
    refreshed = await database_sync_to_async(MigrationTask.objects.get)(pk=task.pk)
    assert refreshed.cancel_requested_at is None


async def test_cancel_of_ended_task_refused(sockets):
    owner = await create_user()
    task = await create_task(owner, state="failed")
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    await receive(socket)

    await socket.send_json_to({"action": "cancel"})
    answer = await receive(socket)

    assert answer["accepted"] is False
    assert "already ended (failed)" in answer["message"]


# Values the browser must still read as JSON, and text it must show as text.


def reject_constant(name: str) -> None:
    raise ValueError(f"JSON.parse would reject {name}")


async def test_json_hostile_live_values_sent_as_valid_json(sockets):
    owner = await create_user()
    task = await create_task(owner)
    socket = await open_socket(task.task_id, owner)
    sockets.append(socket)
    await receive(socket)

    # A custom sender may put values into group messages that JSON cannot hold;
    # these three also pass through channels-redis.
    odd = make_message(
        task.task_id, 1, ratio=float("nan"), limit=float("inf"), raw=b"\xff"
    )
    await group_send(task.task_id, {"type": "log_message", "message": odd})
    text = await socket.receive_from(timeout=FRAME_TIMEOUT)

    message = json.loads(text, parse_constant=reject_constant)["message"]
    assert message["ratio"] is None
    assert message["limit"] is None
    assert message["raw"] == "\ufffd"
    await expect_quiet(socket)


async def test_encoder_turns_odd_values_into_json():
    text = await MigrationConsumer.encode_json(
        {"amount": Decimal("1.5"), "tags": {"b", "a"}, 7: "int key", None: "none"}
    )

    assert json.loads(text, parse_constant=reject_constant) == {
        "amount": "1.5",
        "tags": ["a", "b"],
        "7": "int key",
        "null": "none",
    }


def test_page_script_writes_no_html():
    """The page script builds log lines with textContent, never by parsing HTML."""
    script = SCRIPT.read_text()

    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in script, f"migration.js uses {sink}"
    assert "textContent" in script


# Real migrations, started with start_migration.


async def start(task_id: str, owner, target: str, *args) -> None:
    await database_sync_to_async(start_migration)(
        task_id, target, args=args, owner=owner
    )


async def wait_until_ended(runtime, task_id: str) -> None:
    await sync_to_async(runtime.supervisor().wait, thread_sensitive=False)(
        task_id, timeout=60
    )


async def test_real_migration_arrives_complete_in_order(sockets, runtime, unique_id):
    owner = await create_user()
    await start(unique_id, owner, "tests.django_integration.jobs:count_to", 300)
    socket = await open_socket(unique_id, owner)
    sockets.append(socket)

    frames = await receive_until_finished(socket)
    messages = [m for frame in frames for m in frame_messages(frame)]

    assert seqs(frames) == list(range(1, len(messages) + 1))
    assert messages[0]["event"] == "started"
    assert [m["message"] for m in messages[1:-1]] == [
        f"line {n}" for n in range(1, 301)
    ]
    assert messages[-1]["event"] == "finished"
    assert messages[-1]["state"] == "succeeded"
    assert messages[-1]["progress"] == 100


async def test_real_migration_watched_after_end(sockets, runtime, unique_id):
    owner = await create_user()
    await start(unique_id, owner, "tests.django_integration.jobs:count_to", 50)
    await wait_until_ended(runtime, unique_id)
    socket = await open_socket(unique_id, owner, query="?after=10")
    sockets.append(socket)

    snapshot = await receive(socket)

    assert snapshot["task"]["state"] == "succeeded"
    assert [m["seq"] for m in snapshot["messages"]] == list(range(11, 53))
    assert snapshot["messages"][-1]["event"] == "finished"
    await expect_quiet(socket)


async def test_cancel_over_websocket_ends_job(sockets, runtime, unique_id, caplog):
    """A browser's cancel stops a job mid-flood, and its finished message arrives."""
    caplog.set_level(logging.DEBUG)
    owner = await create_user()
    await start(
        unique_id, owner, "tests.django_integration.web_jobs:log_then_wait", 1000
    )
    socket = await open_socket(unique_id, owner)
    sockets.append(socket)

    frames = [await receive(socket)]
    while not seqs(frames) or max(seqs(frames)) < 1001:
        frames.append(await receive(socket))
    await socket.send_json_to({"action": "cancel"})
    await receive_until_finished(socket, frames)

    answers = [f for f in frames if f["type"] == "cancel_result"]
    assert [a["accepted"] for a in answers] == [True]
    messages = [m for frame in frames for m in frame_messages(frame)]
    assert seqs(frames) == list(range(1, len(messages) + 1))
    assert messages[-1]["state"] == "cancelled"
    for text in FORBIDDEN_LOG_TEXT:
        assert text not in caplog.text


async def test_hostile_options_arrive_as_json(sockets, runtime, unique_id):
    owner = await create_user()
    await start(unique_id, owner, "tests.django_integration.jobs:log_hostile_options")
    socket = await open_socket(unique_id, owner)
    sockets.append(socket)

    frames = await receive_until_finished(socket)
    messages = {m["message"]: m for frame in frames for m in frame_messages(frame)}

    hostile = messages["hostile"]
    assert hostile["when"].endswith("+00:00")
    assert hostile["amount"] == "1.5"
    assert sorted(hostile["tags"]) == ["a", "b"]
    assert hostile["path"] == "exports/sales.tmdl"
    assert hostile["1"] == "int key"
    assert "ordinary" in messages
    await expect_quiet(socket)


async def test_hostile_text_arrives_unchanged(sockets, runtime, unique_id):
    owner = await create_user()
    await start(unique_id, owner, "tests.django_integration.web_jobs:log_hostile_text")
    socket = await open_socket(unique_id, owner)
    sockets.append(socket)
    live = await receive_until_finished(socket)
    replayed = await open_socket(unique_id, owner)
    sockets.append(replayed)
    snapshot = await receive(replayed)

    for frames in (live, [snapshot]):
        messages = [m for frame in frames for m in frame_messages(frame)]
        hostile = next(m for m in messages if m["message"] == HOSTILE_MESSAGE)
        assert hostile["f"] == HOSTILE_OPTION
        assert hostile["message_type"] == "info"
