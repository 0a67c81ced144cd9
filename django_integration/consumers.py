"""The WebSocket consumer that streams one migration task to the browser.

A browser connects to ``ws/migration/<task_id>/``, optionally with ``?after=<seq>``
to resume after the last message it has. The consumer joins the Channels group
``migration_<task_id>`` first, then sends a snapshot read from the database, then
the live stream. It remembers the last ``seq`` it sent, so a live message already
in the snapshot is dropped, and a live message that arrives before its
predecessors were stored waits while the missing ones are read from the database.
The browser thus receives every message once, in ``seq`` order.

Frames the consumer sends (JSON objects, distinguished by ``"type"``). A frame
carries at most ``MAX_FRAME_BYTES`` of encoded messages, and longer runs are
split over several frames in ``seq`` order. A single larger message goes in a
frame of its own: the supervisor cuts each message's text and options to 64 KiB
each by default (``MAX_MESSAGE_CHARS``, ``MAX_OPTIONS_BYTES``), so it stays far
below the 1 MiB frames Daphne accepts. NOTE: raising those two settings far
above their defaults can make one message's frame exceed that limit.

``{"type": "snapshot", "task": {...}, "messages": [...]}``
    The first frame: the task's status (``get_status``: ``state``, ``progress``,
    ``exit_code``, ``signal``, ``error`` and the rest) and the first stored
    messages with ``seq`` greater than ``after``. The other stored messages
    follow in ``log`` and ``logs`` frames, before any live message.
``{"type": "log", "message": {...}}``
    One message.
``{"type": "logs", "messages": [...]}``
    Several messages in ``seq`` order: a live batch, a live message together
    with the missing ones read from the database before it, or a part of the
    stored messages that follow a snapshot or precede a replay frame.
``{"type": "gap", "after": a, "before": b}``
    Messages ``a + 1`` to ``b - 1`` were not found in the database within about
    two seconds; the stream goes on with ``b``. Ask for them again with
    ``replay``.
``{"type": "replay", "after": a, "before": b, "messages": [...]}``
    The answer to a replay request: the last of the stored messages strictly
    between ``a`` and ``b``. The ones before them come first in ``logs``
    frames, so the ``replay`` frame marks the end of the answer.
``{"type": "status", "task": {...}}``
    The task ended without a ``finished`` message in its stream (it was marked
    ``lost`` by an older version that stored none); ``task`` is as in the
    snapshot.
``{"type": "cancel_result", "accepted": bool, "message": str}``
    The answer to a cancel request. The task's ``finished`` message follows in
    the stream once the child has stopped.
``{"type": "pong"}``
    The answer to a ping.
``{"type": "error", "message": str}``
    A client frame was malformed; the message says what is wrong. The socket
    stays open.

Frames the browser may send: ``{"action": "ping"}``, ``{"action": "cancel"}``
(for the owner or a user with ``CANCEL_PERMISSION``) and ``{"action": "replay",
"after": a, "before": b}`` (``before`` may be null for "up to the end").

Close codes, sent right after the handshake so that the browser can read them
(a socket closed during the handshake reaches the browser as 1006 without a
code):

* 4400: the task id or ``after`` is invalid;
* 4403: the user is anonymous, or neither the task's owner nor holder of
  ``WATCH_PERMISSION``;
* 4404: no task has this id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import orjson
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

import django_integration
from django_integration import permissions
from django_integration.models import (
    TASK_ID_PATTERN,
    MigrationLog,
    MigrationTask,
    TaskState,
)

logger = logging.getLogger(__name__)

CLOSE_INVALID = 4400
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404

#: Seconds after the snapshot before the consumer first looks for stored
#: messages that neither the snapshot nor a live event brought.
FIRST_POLL_DELAY = 0.1
#: Seconds without live messages before the consumer looks again for stored ones
#: it missed; the interval doubles while nothing is found, up to the maximum.
POLL_INTERVAL = 1.0
MAX_POLL_INTERVAL = 15.0

#: Seconds during which gaps are read once, without waiting, after a gap stayed
#: open.
NO_RETRY_PERIOD = 10.0

#: Bytes of encoded messages in one frame. Daphne closes a socket that is sent a
#: frame over 1 MiB, and browsers parse smaller frames without stalling the page.
MAX_FRAME_BYTES = 256 * 1024

#: Stored messages read in one query, so that a long stream never sits in
#: memory whole.
PAGE_ROWS = 2000

#: Largest seq accepted from the browser; the database column is a 32-bit integer.
MAX_SEQ = 2**31 - 1

#: Maximum length of a text frame from the browser, whose frames are a few bytes.
MAX_CLIENT_FRAME_CHARS = 4096

#: Pauses between reads of a missing range while the database saver catches up,
#: about two seconds in all.
GAP_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.6, 0.65)

_TASK_ID = re.compile(TASK_ID_PATTERN)
FINAL_STATES = TaskState.final_values()
_ACTIONS = ("ping", "cancel", "replay")


def group_name(task_id: str) -> str:
    """Return the Channels group that carries the task's live stream."""
    return f"migration_{task_id}"


class ClientFrameError(ValueError):
    """A frame from the browser that the consumer cannot act on."""


class MigrationConsumer(AsyncJsonWebsocketConsumer):
    """Stream one task's snapshot and live messages; accept ping, cancel, replay."""

    gap_retry_delays: tuple[float, ...] = GAP_RETRY_DELAYS
    first_poll_delay: float = FIRST_POLL_DELAY
    poll_interval: float = POLL_INTERVAL
    max_poll_interval: float = MAX_POLL_INTERVAL
    no_retry_period: float = NO_RETRY_PERIOD
    page_rows: int = PAGE_ROWS

    async def connect(self) -> None:
        self.task_id: str = self.scope["url_route"]["kwargs"]["task_id"]
        self.user = self.scope.get("user")
        self.last_seq = 0
        self.finished_sent = False
        self._forward_lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self._no_retry_until = 0.0

        # Accepting before any database read keeps the handshake short when
        # many browsers connect at once and wait for database connections.
        await self.accept()
        close_code = await self._check_request()
        if close_code is not None:
            await self.close(code=close_code)
            return

        # Joining before reading the snapshot means no live message can fall
        # between the two; the ones in both are dropped by seq.
        group = group_name(self.task_id)
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups.append(group)
        await self._send_snapshot()
        if not self.finished_sent:
            self._poller = asyncio.create_task(self._poll_database())

    async def disconnect(self, code: int) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def _check_request(self) -> int | None:
        if not _TASK_ID.fullmatch(self.task_id):
            logger.info("Rejected stream of invalid task id %r", self.task_id[:100])
            return CLOSE_INVALID
        try:
            self.last_seq = parse_after(self.scope.get("query_string", b""))
        except ValueError:
            logger.info("Rejected stream of task %s: invalid after", self.task_id)
            return CLOSE_INVALID

        access = await _check_watch_access(self.user, self.task_id)
        if access is not None:
            logger.info(
                "Rejected stream of task %s for user %s: close code %s",
                self.task_id,
                _user_label(self.user),
                access,
            )
        return access

    async def _send_snapshot(self) -> None:
        status, page = await _read_snapshot(self.task_id, self.last_seq, self.page_rows)
        await self._send_stored(page, head={"type": "snapshot", "task": status})
        while len(page) == self.page_rows:
            page = await _read_page(self.task_id, self.last_seq, None, self.page_rows)
            await self._send_stored(page)
        logger.debug(
            "Sent snapshot of task %s to user %s up to seq %s",
            self.task_id,
            _user_label(self.user),
            self.last_seq,
        )

        # The stream may have carried messages that the database saver has not
        # stored yet. No live message may come to reveal that gap, because the
        # task may have ended, so wait for them here.
        expected_last = status.get("message_count")
        if isinstance(expected_last, int) and expected_last > self.last_seq:
            await self._forward([], until=expected_last)

    async def _send_stored(
        self, page: list[dict[str, Any]], head: dict[str, Any] | None = None
    ) -> None:
        """Send a page of stored messages that follows ``last_seq``."""
        if page:
            self.last_seq = page[-1]["seq"]
        await self._send_messages(page, head)

    async def _poll_database(self) -> None:
        """Send stored messages that no live message brought, until ``finished``.

        A live message can be missed for good: it was sent before this consumer
        joined the group but stored after the snapshot was read, or the channel
        layer dropped it (a full channel, Redis down). While live messages flow
        the poll does nothing. When they stop, it reads the database at a
        growing interval, until the task has ended. The first read comes soon
        after the snapshot, because a message stored just after it was read
        would otherwise wait for the next live one.
        """
        interval = self.first_poll_delay
        while not self.finished_sent:
            seen = self.last_seq
            await asyncio.sleep(interval)
            if self.last_seq != seen:
                interval = self.poll_interval
                continue
            try:
                found_new = await self._poll_once()
            except Exception:
                logger.exception(
                    "Task %s: reading stored messages failed", self.task_id
                )
                found_new = False
            interval = (
                self.poll_interval
                if found_new
                else min(max(interval * 2, self.poll_interval), self.max_poll_interval)
            )

    async def _poll_once(self) -> bool:
        status, page = await _read_snapshot(self.task_id, self.last_seq, self.page_rows)
        if page:
            await self._forward(page)
            while len(page) == self.page_rows:
                page = await _read_page(
                    self.task_id, self.last_seq, None, self.page_rows
                )
                await self._forward(page)
            return True
        if status.get("state") in FINAL_STATES and not self.finished_sent:
            # The task ended without a finished message in the stream, such as a
            # task marked lost by a version that stored no finished message.
            self.finished_sent = True
            await self.send_json({"type": "status", "task": status})
        return False

    # Channels events, named after their "type".

    async def log_message(self, event: dict[str, Any]) -> None:
        await self._forward([event.get("message")])

    async def log_batch(self, event: dict[str, Any]) -> None:
        await self._forward(event.get("messages") or [])

    async def _forward(self, incoming: Iterable[Any], until: int = 0) -> None:
        """Send the new messages in ``seq`` order, reading holes from the database.

        ``until`` is a seq that must be reached even when no message after it
        arrived.
        """
        async with self._forward_lock:
            pending: list[dict[str, Any]] = []
            for message in _in_seq_order(incoming, self.task_id):
                seq = message.get("seq")
                if not _is_seq(seq):
                    pending.append(message)
                    continue
                if seq <= self.last_seq:
                    continue
                if seq > self.last_seq + 1:
                    await self._fill_gap(seq, pending)
                pending.append(message)
                self.last_seq = seq
            if until > self.last_seq:
                await self._fill_gap(until + 1, pending)
            await self._send_messages(pending)

    async def _fill_gap(self, before: int, pending: list[dict[str, Any]]) -> None:
        """Append the stored messages between ``last_seq`` and ``before``."""
        await self._send_long_gap(before, pending)
        found = await self._read_range_with_retry(self.last_seq, before)
        for message in found:
            if message["seq"] > self.last_seq + 1:
                await self._send_gap(pending, message["seq"])
            pending.append(message)
            self.last_seq = message["seq"]
        if before > self.last_seq + 1:
            await self._send_gap(pending, before)
            self.last_seq = before - 1

    async def _send_long_gap(self, before: int, pending: list[dict[str, Any]]) -> None:
        """Send the stored start of a gap longer than a page, one page at a time.

        A gap can span thousands of messages, such as after the database was
        unreachable, so it is not read in one query. The reading stops at the
        first message not stored yet, and ``_fill_gap`` waits for the rest.
        """
        while before - self.last_seq - 1 > self.page_rows:
            page = await _read_page(self.task_id, self.last_seq, before, self.page_rows)
            stored = _contiguous_prefix(page, self.last_seq)
            if not stored:
                return
            pending.extend(stored)
            self.last_seq = stored[-1]["seq"]
            await self._send_messages(pending)
            pending.clear()
            if len(stored) < len(page):
                return

    async def _read_range_with_retry(
        self, after: int, before: int
    ) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        # A gap that stayed open means the saver is likely stalled. Waiting again
        # for every later message would leave the consumer far behind the
        # stream, so for a while each gap gets one read only.
        retrying = loop.time() >= self._no_retry_until
        delays = (0.0, *self.gap_retry_delays) if retrying else (0.0,)

        found: list[dict[str, Any]] = []
        for delay in delays:
            await asyncio.sleep(delay)
            found = _contiguous_prefix(found, after)
            start = found[-1]["seq"] if found else after
            found.extend(await _read_messages(self.task_id, start, before))
            if len(found) == before - after - 1:
                return found
        self._no_retry_until = loop.time() + self.no_retry_period
        return found

    async def _send_gap(self, pending: list[dict[str, Any]], before: int) -> None:
        logger.warning(
            "Task %s: messages %s to %s are not stored yet; sent a gap note to user %s",
            self.task_id,
            self.last_seq + 1,
            before - 1,
            _user_label(self.user),
        )
        await self._send_messages(pending)
        pending.clear()
        await self.send_json({"type": "gap", "after": self.last_seq, "before": before})

    async def _send_messages(
        self, messages: list[dict[str, Any]], head: dict[str, Any] | None = None
    ) -> None:
        """Send ``messages`` in frames of at most ``MAX_FRAME_BYTES`` of messages.

        With ``head``, the first frame is ``head`` with the first messages under
        ``"messages"``, sent even when there are none.
        """
        if any(message.get("event") == "finished" for message in messages):
            self.finished_sent = True
        room = MAX_FRAME_BYTES
        if head is not None:
            room -= len(encode_message(head))
        chunks = chunk_messages(messages, first_room=room)
        if head is not None:
            await self.send_json({**head, "messages": next(chunks, [])})
        await self._send_chunks(chunks)

    async def _send_chunks(self, chunks: Iterable[list[orjson.Fragment]]) -> None:
        for chunk in chunks:
            if len(chunk) == 1:
                await self.send_json({"type": "log", "message": chunk[0]})
            else:
                await self.send_json({"type": "logs", "messages": chunk})

    # Frames from the browser.

    async def receive(
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            content = decode_client_frame(text_data, bytes_data)
            await self.receive_json(content)
        except ClientFrameError as exc:
            logger.info(
                "Task %s: user %s sent a malformed frame: %s",
                self.task_id,
                _user_label(self.user),
                exc,
            )
            await self.send_json({"type": "error", "message": str(exc)})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        action = parse_action(content)
        if action == "ping":
            await self.send_json({"type": "pong"})
        elif action == "cancel":
            await self._cancel()
        else:
            after, before = parse_replay(content)
            await self._replay(after, before)

    async def _replay(self, after: int, before: int | None) -> None:
        """Send the stored messages between ``after`` and ``before``, page by page.

        The chunks go out as ``log`` and ``logs`` frames, except the last one,
        which the ``replay`` frame carries to mark the end of the answer.
        """
        last_chunk: list[orjson.Fragment] = []
        page_after = after
        while True:
            page = await _read_page(self.task_id, page_after, before, self.page_rows)
            for chunk in chunk_messages(page):
                if last_chunk:
                    await self._send_chunks([last_chunk])
                last_chunk = chunk
            if len(page) < self.page_rows:
                break
            page_after = page[-1]["seq"]
        await self.send_json(
            {
                "type": "replay",
                "after": after,
                "before": before,
                "messages": last_chunk,
            }
        )

    async def _cancel(self) -> None:
        accepted, text = await _cancel_task(self.user, self.task_id)
        logger.info(
            "Task %s: cancel over WebSocket by user %s: %s",
            self.task_id,
            _user_label(self.user),
            text,
        )
        await self.send_json(
            {"type": "cancel_result", "accepted": accepted, "message": text}
        )

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        # orjson writes NaN and infinities as null, which JSON.parse accepts,
        # where json.dumps writes NaN, which it rejects. The fallback turns a
        # stray value from a custom sender (a Decimal, a set) into JSON instead
        # of an exception that would close the socket.
        encoded: bytes = orjson.dumps(
            content, default=_json_fallback, option=orjson.OPT_NON_STR_KEYS
        )
        return encoded.decode()


def parse_after(query_string: bytes) -> int:
    """Return the ``after`` seq of a query string, 0 when absent.

    Raises ValueError for a value that is not a non-negative integer.
    """
    values = parse_qs(query_string.decode("latin-1")).get("after")
    if not values:
        return 0
    text = values[-1].strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_SEQ:
        raise ValueError(
            f"invalid after {text[:80]!r}: use an integer seq from 0 to {MAX_SEQ}"
        )
    return int(text)


def decode_client_frame(text_data: str | None, bytes_data: bytes | None) -> Any:
    """Decode a browser frame, raising ClientFrameError naming what is wrong."""
    if text_data is None:
        raise ClientFrameError(
            "binary frames are not accepted: send a JSON object as text, such as "
            '{"action": "ping"}'
        )
    if len(text_data) > MAX_CLIENT_FRAME_CHARS:
        raise ClientFrameError(
            f"frame of {len(text_data)} characters is too long: send at most "
            f"{MAX_CLIENT_FRAME_CHARS}"
        )
    try:
        return orjson.loads(text_data)
    except orjson.JSONDecodeError as exc:
        raise ClientFrameError(
            f'invalid JSON ({exc}): send an object such as {{"action": "ping"}}'
        ) from exc


def parse_action(content: Any) -> str:
    if not isinstance(content, dict):
        raise ClientFrameError(
            f"expected a JSON object, got {type(content).__name__}: send an object "
            'such as {"action": "ping"}'
        )
    action = content.get("action")
    if action not in _ACTIONS:
        raise ClientFrameError(
            f"unknown action {_short_repr(action)}: use one of "
            f"{', '.join(map(repr, _ACTIONS))}"
        )
    return str(action)


def parse_replay(content: dict[str, Any]) -> tuple[int, int | None]:
    after = content.get("after", 0)
    before = content.get("before")
    if not _is_seq(after):
        raise ClientFrameError(
            f"invalid replay after {_short_repr(after)}: use an integer from 0 to "
            f"{MAX_SEQ}"
        )
    if before is not None and not (_is_seq(before) and before > after):
        raise ClientFrameError(
            f"invalid replay before {_short_repr(before)}: use null or an integer "
            f"greater than after ({after})"
        )
    return after, before


def encode_message(message: Any) -> bytes:
    """Encode one message as the consumer's frames carry it."""
    encoded: bytes = orjson.dumps(
        message, default=_json_fallback, option=orjson.OPT_NON_STR_KEYS
    )
    return encoded


def chunk_messages(
    messages: Iterable[Any], first_room: int = MAX_FRAME_BYTES
) -> Iterator[list[orjson.Fragment]]:
    """Yield the encoded messages in lists of at most ``MAX_FRAME_BYTES``, in order.

    The first list contains at most ``first_room`` bytes. A message larger than
    the limit gets a list of its own, and each list contains at least one
    message.
    """
    chunk: list[orjson.Fragment] = []
    size = 0
    room = first_room
    for message in messages:
        encoded = encode_message(message)
        # One byte more for the comma between messages.
        if chunk and size + len(encoded) + 1 > room:
            yield chunk
            chunk, size, room = [], 0, MAX_FRAME_BYTES
        chunk.append(orjson.Fragment(encoded))
        size += len(encoded) + 1
    if chunk:
        yield chunk


def _is_seq(value: Any) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQ
    )


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _in_seq_order(incoming: Iterable[Any], task_id: str) -> list[dict[str, Any]]:
    messages = []
    for message in incoming:
        if isinstance(message, dict):
            messages.append(message)
        else:
            logger.warning(
                "Task %s: dropped a group event message that is not a dict: %r",
                task_id,
                type(message).__name__,
            )
    return sorted(messages, key=lambda m: m.get("seq") if _is_seq(m.get("seq")) else 0)


def _contiguous_prefix(found: list[dict[str, Any]], after: int) -> list[dict[str, Any]]:
    for index, message in enumerate(found):
        if message["seq"] != after + index + 1:
            return found[:index]
    return found


def _json_fallback(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Decimal):
        return str(value)
    return repr(value)


def _user_label(user: Any) -> str:
    if user is None or not getattr(user, "is_authenticated", False):
        return "anonymous"
    return str(user.pk)


# Database access, run in a worker thread.


@database_sync_to_async
def _check_watch_access(user: Any, task_id: str) -> int | None:
    if user is None or not user.is_authenticated:
        return CLOSE_FORBIDDEN
    task = MigrationTask.objects.filter(task_id=task_id).first()
    if task is None:
        return CLOSE_NOT_FOUND
    if not permissions.can_watch(user, task):
        return CLOSE_FORBIDDEN
    return None


@database_sync_to_async
def _read_snapshot(
    task_id: str, after: int, limit: int
) -> tuple[dict[str, Any], list[Any]]:
    """Return the task's status and the first ``limit`` messages after ``after``."""
    status = django_integration.get_status(task_id).to_dict()
    return status, read_page(task_id, after, None, limit)


def read_messages(task_id: str, after: int, before: int | None) -> list[dict[str, Any]]:
    """Return the stored messages with ``after < seq < before`` in ``seq`` order."""
    return [row.to_message() for row in _rows_between(task_id, after, before)]


def read_page(
    task_id: str, after: int, before: int | None = None, limit: int = PAGE_ROWS
) -> list[dict[str, Any]]:
    """Return the first ``limit`` stored messages with ``after < seq < before``."""
    rows = _rows_between(task_id, after, before)[:limit]
    return [row.to_message() for row in rows]


def _rows_between(task_id: str, after: int, before: int | None) -> Any:
    rows = MigrationLog.objects.filter(task_id=task_id, seq__gt=after)
    if before is not None:
        rows = rows.filter(seq__lt=before)
    return rows.order_by("seq")


_read_messages = database_sync_to_async(read_messages)
_read_page = database_sync_to_async(read_page)


@database_sync_to_async
def _cancel_task(user: Any, task_id: str) -> tuple[bool, str]:
    task = MigrationTask.objects.filter(task_id=task_id).first()
    if task is None:
        return False, f"task {task_id!r} does not exist"
    if not permissions.can_cancel(user, task):
        return False, (
            f"you may not cancel task {task_id!r}: only its owner or a user with "
            f"the permission {permissions.cancel_permission()!r} may"
        )
    if task.is_final:
        return False, f"task {task_id!r} already ended ({task.state})"
    cancelled = django_integration.cancel_migration(task_id, by=user)
    if not cancelled:
        return False, f"task {task_id!r} was not running"
    return True, f"cancel of task {task_id!r} requested"
