"""The two default sinks: the Channels sender and the database saver.

The supervisor calls each sink on a thread of its own, with lists of messages in
``seq`` order. A sink that raises gets the same list again after a back-off, so
both sinks here tolerate seeing a list twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson
from channels.layers import (
    DEFAULT_CHANNEL_LAYER,
    InMemoryChannelLayer,
    get_channel_layer,
)
from django.db import (
    DEFAULT_DB_ALIAS,
    connection,
    connections,
    transaction,
)
from django.db.models import Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from django_integration.models import (
    MESSAGE_FIELDS,
    MessageEvent,
    MessageType,
    MigrationLog,
    MigrationTask,
    TaskState,
)

logger = logging.getLogger(__name__)

Message = dict[str, Any]

#: Seconds one ``send_batch`` may take before it counts as failed and is retried.
SEND_TIMEOUT = 30.0
#: A ``log_batch`` group message carries at most this many messages, and about
#: this many characters of text, so one group message stays far below Redis's
#: and the browser's comfortable sizes.
MAX_BATCH_MESSAGES = 200
MAX_BATCH_CHARS = 512 * 1024


def group_name(task_id: str) -> str:
    """Return the Channels group that a task's messages are sent to."""
    return f"migration_{task_id}"


def split_runs(messages: Iterable[Message]) -> Iterator[list[Message]]:
    """Yield runs of consecutive messages that belong to one task."""
    for _, run in itertools.groupby(messages, key=lambda message: message["task_id"]):
        yield list(run)


def group_by_task(messages: Iterable[Message]) -> list[list[Message]]:
    """Return each task's messages in their order, tasks in order of first appearance.

    Unlike `split_runs`, a task whose messages are interleaved with another
    task's gets one list, so nothing sends two parts of one task side by side.
    """
    groups: dict[str, list[Message]] = {}
    for message in messages:
        groups.setdefault(message["task_id"], []).append(message)
    return list(groups.values())


def split_by_size(run: Sequence[Message]) -> Iterator[list[Message]]:
    """Cut a run of one task's messages into lists small enough for one group send."""
    chunk: list[Message] = []
    chars = 0
    for message in run:
        size = len(str(message.get("message", "")))
        if chunk and (
            len(chunk) >= MAX_BATCH_MESSAGES or chars + size > MAX_BATCH_CHARS
        ):
            yield chunk
            chunk, chars = [], 0
        chunk.append(message)
        chars += size
    if chunk:
        yield chunk


class ChannelsSender:
    """Sink that sends each message to the Channels group ``migration_<task_id>``.

    Every send runs on one event loop that lives as long as the sender, on a
    thread of its own. A loop per call (``async_to_sync``) would open and drop
    Redis connections each time and leave channels-redis tasks bound to closed
    loops. With ``batch_send`` a run of one task's messages goes out as one
    ``{"type": "log_batch", "messages": [...]}`` group message, and otherwise
    each message is one ``{"type": "log_message", "message": ...}``. One task's
    group messages are sent one after another to keep their order. Different
    tasks are sent side by side, at most ``concurrency`` group sends at once,
    because an unbounded fan-out exhausts channels-redis's connection pool.
    A ``send_batch`` that takes longer than ``send_timeout`` seconds raises.
    """

    def __init__(
        self,
        *,
        batch_send: bool = True,
        concurrency: int = 8,
        layer_alias: str = DEFAULT_CHANNEL_LAYER,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"invalid concurrency {concurrency!r}: use 1 or more")
        self.batch_send = batch_send
        self.concurrency = concurrency
        self.send_timeout = send_timeout
        self.layer_alias = layer_alias
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<ChannelsSender {self.layer_alias!r} "
            f"batch_send={self.batch_send} {state}>"
        )

    def __call__(self, message: Message) -> None:
        self.send_batch([message])

    def send_batch(self, messages: list[Message]) -> None:
        """Send ``messages`` and return once every group send finished.

        Raises the first error of a group send, after the other sends of the
        list ended, so the supervisor retries the whole list.
        """
        if not messages:
            return
        loop = self._start_loop()
        future = asyncio.run_coroutine_threadsafe(self._send_all(messages), loop)
        try:
            future.result(timeout=self.send_timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise TimeoutError(
                f"sending {len(messages)} messages of task "
                f"{messages[0]['task_id']!r} to the channel layer timed out after "
                f"{self.send_timeout} s"
            ) from exc

    def close(self) -> None:
        """Stop the event loop and close its Redis connections; safe to call twice."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            self._closed = True
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("the Channels sender is closed")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._semaphore = asyncio.Semaphore(self.concurrency)
                self._thread = threading.Thread(
                    target=_run_until_stopped,
                    args=(self._loop,),
                    name="migration-channels-sender",
                    daemon=True,
                )
                self._thread.start()
            return self._loop

    async def _send_all(self, messages: list[Message]) -> None:
        layer = get_channel_layer(self.layer_alias)
        if layer is None:
            raise RuntimeError(
                f"no channel layer {self.layer_alias!r} is configured in CHANNEL_LAYERS"
            )
        waiting_loops = _loops_waiting_on(layer)
        results = await asyncio.gather(
            *(self._send_run(layer, run) for run in group_by_task(messages)),
            return_exceptions=True,
        )
        _wake(waiting_loops)
        errors = [result for result in results if isinstance(result, BaseException)]
        if errors:
            raise errors[0]

    async def _send_run(self, layer: Any, run: list[Message]) -> None:
        group = group_name(run[0]["task_id"])
        for event in self._events(run):
            assert self._semaphore is not None
            async with self._semaphore:
                await layer.group_send(group, event)

    def _events(self, run: list[Message]) -> Iterator[dict[str, Any]]:
        if not self.batch_send:
            for message in run:
                yield {"type": "log_message", "message": message}
            return
        for chunk in split_by_size(run):
            if len(chunk) == 1:
                yield {"type": "log_message", "message": chunk[0]}
            else:
                yield {"type": "log_batch", "messages": chunk}


def _run_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.run_forever()
    finally:
        # channels-redis wraps loop.close() to close the connections it opened
        # on this loop. It runs the loop once more to do so, which works only
        # on a thread without a running loop, such as this one now.
        loop.close()


def _loops_waiting_on(layer: Any) -> set[asyncio.AbstractEventLoop]:
    """Return the event loops of consumers blocked in ``receive`` on an in-memory layer.

    The in-memory layer wakes a waiting consumer by completing its future from
    the sender's thread, which does not wake the consumer's event loop. So the
    sender wakes those loops itself after sending.
    """
    if not isinstance(layer, InMemoryChannelLayer):
        return set()
    # NOTE: reads asyncio.Queue's private list of waiting getters (CPython 3.11
    # and later); with another layer nothing here runs.
    loops = set()
    for queue in list(layer.channels.values()):
        for waiter in list(getattr(queue, "_getters", ())):
            loops.add(waiter.get_loop())
    return loops


def _wake(loops: Iterable[asyncio.AbstractEventLoop]) -> None:
    for loop in loops:
        if not loop.is_closed():
            loop.call_soon_threadsafe(lambda: None)


class DatabaseSaver:
    """Sink that stores each message as a ``MigrationLog`` row and updates the task row.

    A list seen again after a failure inserts nothing twice, because rows that
    already exist for a ``(task, seq)`` are skipped. A task whose row is in a
    final state keeps its outcome: every update of the task row is conditional
    on a state that is not final. On PostgreSQL the rows go in through ``COPY``.
    Database errors propagate, so the supervisor retries. The connection is
    closed first, so the retry opens a new one and reconnects to a restarted
    database server. Between failures the sink thread
    keeps one connection open, whatever ``CONN_MAX_AGE`` is.
    """

    def __init__(
        self,
        *,
        batch_size: int = 500,
        dropped_count: Callable[[str], int] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"invalid batch_size {batch_size!r}: use 1 or more")
        self.batch_size = batch_size
        #: Returns how many messages of a task the sinks gave up on so far.
        self.dropped_count = dropped_count
        self._connections: set[Any] = set()

    def __repr__(self) -> str:
        return f"<DatabaseSaver batch_size={self.batch_size}>"

    def __call__(self, message: Message) -> None:
        self.send_batch([message])

    def send_batch(self, messages: list[Message]) -> None:
        if not messages:
            return
        self._connections.add(connections[DEFAULT_DB_ALIAS])
        try:
            with transaction.atomic():
                self._save(messages)
        except Exception:
            connection.close()
            raise

    def close(self) -> None:
        """Close the connections the sink thread opened; safe to call twice.

        ``close()`` runs on the thread that stops the supervisor, so each
        connection is allowed to be closed from another thread first.
        """
        while self._connections:
            wrapper = self._connections.pop()
            wrapper.inc_thread_sharing()
            try:
                wrapper.close()
            finally:
                wrapper.dec_thread_sharing()

    def _save(self, messages: list[Message]) -> None:
        runs = group_by_task(messages)
        _create_missing_tasks({run[0]["task_id"] for run in runs})
        if connection.vendor == "postgresql":
            copy_log_rows(messages)
        else:
            MigrationLog.objects.bulk_create(
                [log_row(message) for message in messages],
                batch_size=self.batch_size,
                ignore_conflicts=True,
            )
        for run in runs:
            update_task(run, self._dropped(run[0]["task_id"]))

    def _dropped(self, task_id: str) -> int:
        return 0 if self.dropped_count is None else self.dropped_count(task_id)


def _create_missing_tasks(task_ids: set[str]) -> None:
    """Create the rows of tasks that were started on a supervisor directly."""
    known = set(
        MigrationTask.objects.filter(task_id__in=task_ids).values_list(
            "task_id", flat=True
        )
    )
    missing = task_ids - known
    if missing:
        MigrationTask.objects.bulk_create(
            [MigrationTask(task_id=task_id) for task_id in sorted(missing)],
            ignore_conflicts=True,
        )


#: The ``MigrationLog`` columns that ``copy_log_rows`` writes, in order.
COPY_COLUMNS = (
    "task_id",
    "seq",
    "event",
    "message",
    "message_type",
    "progress",
    "timestamp",
    "options",
)
#: The session's temporary table that ``COPY`` fills. It empties at each commit.
COPY_TABLE = "migration_log_incoming"


def copy_log_rows(messages: list[Message]) -> None:
    """Store ``messages`` on PostgreSQL, skipping rows whose ``(task, seq)`` exists.

    ``COPY`` into a temporary table and one ``INSERT ... SELECT`` write a
    batch of 500 rows in about 40 % of the time ``bulk_create`` takes
    (measured on a local server). Both run in the current transaction, so the rows and
    the task updates commit together.
    """
    table = connection.ops.quote_name(MigrationLog._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(name) for name in COPY_COLUMNS)
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {COPY_TABLE} ON COMMIT DELETE ROWS "
            f"AS SELECT {columns} FROM {table} WITH NO DATA"
        )
        with cursor.copy(f"COPY {COPY_TABLE} ({columns}) FROM STDIN") as copy:
            for message in messages:
                values = log_values(message)
                values["options"] = orjson.dumps(
                    values["options"], option=orjson.OPT_NON_STR_KEYS
                ).decode()
                copy.write_row([values[name] for name in COPY_COLUMNS])
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {COPY_TABLE} "
            f"ON CONFLICT (task_id, seq) DO NOTHING"
        )
        if len(connection.atomic_blocks) > 1:
            # Inside a caller's transaction no commit follows this block, so
            # the next batch would find these rows still there.
            cursor.execute(f"DELETE FROM {COPY_TABLE}")


def log_row(message: Message) -> MigrationLog:
    """Build the ``MigrationLog`` row that stores ``message``."""
    return MigrationLog(**log_values(message))


def log_values(message: Message) -> dict[str, Any]:
    """Return the ``MigrationLog`` column values that store ``message``."""
    return {
        "task_id": message["task_id"],
        "seq": message["seq"],
        "event": message.get("event", MessageEvent.LOG),
        "message": str(message.get("message", "")),
        "message_type": message.get("message_type") or MessageType.INFO,
        "progress": message.get("progress"),
        "timestamp": parse_timestamp(message.get("timestamp")),
        "options": {k: v for k, v in message.items() if k not in MESSAGE_FIELDS},
    }


def parse_timestamp(value: Any) -> datetime.datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if timezone.is_aware(parsed):
                return parsed
    return timezone.now()


def update_task(run: list[Message], dropped: int = 0) -> int:
    """Apply one task's consecutive messages to its row; return the rows changed.

    Only a row in a state that is not final changes, so an outcome once stored
    stays as it is, and a retried list rewrites nothing.
    """
    task_id = run[0]["task_id"]
    changes = _changes_from(run)
    if dropped:
        changes["dropped"] = Greatest("dropped", Value(dropped))
    not_final = ~Q(state__in=TaskState.final_values())
    updated = MigrationTask.objects.filter(not_final, task_id=task_id).update(**changes)
    if not updated:
        logger.debug("task %s: row is final or missing; its fields were kept", task_id)
    return updated


def _changes_from(run: list[Message]) -> dict[str, Any]:
    last = run[-1]
    changes: dict[str, Any] = {"message_count": last["seq"]}
    progress = [m["progress"] for m in run if m.get("progress") is not None]
    if progress:
        changes["progress"] = progress[-1]
    for message in run:
        if message.get("event") == MessageEvent.STARTED:
            changes["state"] = TaskState.RUNNING
            changes["started_at"] = parse_timestamp(message.get("timestamp"))
    if last.get("event") == MessageEvent.FINISHED:
        changes.update(outcome_fields(last))
    return changes


def outcome_fields(finished: Message) -> dict[str, Any]:
    """Return the task row's fields that a ``finished`` message sets."""
    error = finished.get("error") or {}
    fields: dict[str, Any] = {
        "state": finished.get("state") or TaskState.FAILED,
        "exit_code": finished.get("exit_code"),
        "signal": finished.get("signal") or "",
        "error_type": str(error.get("type", "")),
        "error_message": str(error.get("message", "")),
        "traceback": str(error.get("traceback", "")),
        "finished_at": parse_timestamp(finished.get("timestamp")),
    }
    if finished.get("progress") is not None:
        fields["progress"] = finished["progress"]
    return fields
