"""A WebSocket client that watches one task the way the product's page does.

It connects to ``ws/migration/<task_id>/`` with the bench user's session cookie,
reads the consumer's frames (``snapshot``, ``log``, ``logs``, ``gap``,
``replay``), counts each message once by ``seq``, and requests the messages of a
gap note again after the delays the page uses. It stops once it has the
``finished`` message and no gap is open. For every ``log`` message that carries
``sent_at`` it keeps the latency: the ``time.time()`` when the frame arrived
minus ``sent_at``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

#: Seconds before each replay request of a gap, as the product's page waits.
REPLAY_DELAYS = (2.0, 4.0, 8.0, 16.0, 30.0)
#: Seconds the opening handshake may take. Browsers wait longer than the
#: ``websockets`` default of 10 s, and 100 clients connecting at once need it.
OPEN_TIMEOUT = 120.0


@dataclasses.dataclass
class Watch:
    """The part of one task's stream that one client received, with timings."""

    task_id: str
    seen: set[int] = dataclasses.field(default_factory=set)
    duplicates: int = 0
    #: Messages of event ``log``: the job's own lines.
    logs: int = 0
    #: WebSocket frames read, of every type.
    frames: int = 0
    #: ``(after, before)`` of every gap note: messages the live stream missed
    #: and the database did not contain yet.
    gaps: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    #: Gaps whose messages have not all arrived yet.
    open_gaps: set[tuple[int, int]] = dataclasses.field(default_factory=set)
    replayed: int = 0
    #: When the opening handshake completed.
    opened_at: float | None = None
    first_message_at: float | None = None
    first_log_at: float | None = None
    finished_at: float | None = None
    #: When the stream was complete: finished seen and no gap left open.
    complete_at: float | None = None
    close_code: int | None = None
    #: Why the client stopped early, when it was not a close frame.
    error: str | None = None
    latencies: list[float] = dataclasses.field(default_factory=list)
    subscribed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @property
    def received(self) -> int:
        return len(self.seen)

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @property
    def complete(self) -> bool:
        return self.complete_at is not None

    def take(self, messages: list[dict[str, Any]], arrived: float) -> None:
        """Count ``messages`` that arrived together at ``arrived``."""
        for message in messages:
            seq = message.get("seq")
            if not isinstance(seq, int) or seq in self.seen:
                self.duplicates += 1
                continue
            self.seen.add(seq)
            self._note_times(message, arrived)
        self._close_filled_gaps()
        if self.finished and not self.open_gaps and self.complete_at is None:
            self.complete_at = arrived

    def _note_times(self, message: dict[str, Any], arrived: float) -> None:
        if self.first_message_at is None:
            self.first_message_at = arrived
        event = message.get("event")
        if event == "log":
            self.logs += 1
            if self.first_log_at is None:
                self.first_log_at = arrived
            sent_at = message.get("sent_at")
            if isinstance(sent_at, float):
                self.latencies.append(arrived - sent_at)
        elif event == "finished":
            self.finished_at = arrived

    def _close_filled_gaps(self) -> None:
        for gap in list(self.open_gaps):
            after, before = gap
            if all(seq in self.seen for seq in range(after + 1, before)):
                self.open_gaps.discard(gap)


async def watch_task(
    base_url: str, session_id: str, task_id: str, watch: Watch | None = None
) -> Watch:
    """Watch ``task_id`` until its stream is complete or the socket closes."""
    watch = watch or Watch(task_id)
    url = f"{base_url.replace('http', 'ws', 1)}/ws/migration/{task_id}/"
    headers = {"Cookie": f"sessionid={session_id}"}
    try:
        async with connect(
            url,
            origin=base_url,
            additional_headers=headers,
            max_size=None,
            open_timeout=OPEN_TIMEOUT,
        ) as socket:
            watch.opened_at = time.time()
            await _read_until_complete(socket, watch)
            watch.close_code = socket.close_code
    except ConnectionClosed as exc:
        watch.close_code = exc.rcvd.code if exc.rcvd else None
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        watch.error = repr(exc)
    finally:
        watch.subscribed.set()
    return watch


async def _read_until_complete(socket: ClientConnection, watch: Watch) -> None:
    replays: set[asyncio.Task[None]] = set()
    try:
        async for raw in socket:
            arrived = time.time()
            frame = orjson.loads(raw)
            watch.frames += 1
            _handle(frame, watch, arrived, socket, replays)
            if watch.complete:
                return
    finally:
        for replay in replays:
            replay.cancel()


def _handle(
    frame: dict[str, Any],
    watch: Watch,
    arrived: float,
    socket: ClientConnection,
    replays: set[asyncio.Task[None]],
) -> None:
    kind = frame.get("type")
    if kind == "log":
        watch.take([frame["message"]], arrived)
    elif kind in ("logs", "snapshot"):
        watch.take(list(frame["messages"]), arrived)
        if kind == "snapshot":
            watch.subscribed.set()
    elif kind == "replay":
        watch.replayed += len(frame["messages"])
        watch.take(list(frame["messages"]), arrived)
    elif kind == "gap":
        gap = (int(frame["after"]), int(frame["before"]))
        watch.gaps.append(gap)
        watch.open_gaps.add(gap)
        replay = asyncio.create_task(_replay(socket, watch, gap))
        replays.add(replay)
        replay.add_done_callback(replays.discard)


async def _replay(socket: ClientConnection, watch: Watch, gap: tuple[int, int]) -> None:
    """Ask for a gap's messages again until they all arrived, as the page does."""
    after, before = gap
    request = orjson.dumps({"action": "replay", "after": after, "before": before})
    for delay in REPLAY_DELAYS:
        await asyncio.sleep(delay)
        if gap not in watch.open_gaps:
            return
        await socket.send(request.decode())
