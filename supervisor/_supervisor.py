"""The public ``Supervisor``: start, cancel and watch jobs in child processes."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from worker._spec import Limits

from ._drain import DrainThread, Terminate
from ._escalation import terminate
from ._process import ChildLauncher
from ._registry import TaskRegistry
from ._sinks import DEFAULT_MAX_PENDING_BYTES, STALL_SECONDS, Sink, SinkFanout
from ._status import TaskState, TaskStatus
from ._stream import utc_now
from ._task import TaskRecord
from ._validation import (
    check_task_id_type,
    resolve_target,
    validate_arguments,
    validate_task_id,
    validate_timeout,
    validate_total_steps,
    validate_wait_timeout,
)
from .exceptions import SupervisorClosedError

__all__ = ["Supervisor"]

logger = logging.getLogger(__name__)

#: Messages handed to a ``send_batch`` sink in one call, at most.
BATCH_SIZE = 500
#: Seconds, beyond the grace period, that shutdown waits for children to die.
SHUTDOWN_MARGIN = 5.0


class Supervisor:
    """Run jobs in supervised child processes and stream their messages to sinks.

    ``sinks`` maps names to sinks: callables taking one message dict, or
    objects with ``send_batch(list)``; ``close()`` is called at shutdown. At
    most ``max_workers`` children run at once (default: the number of CPUs);
    later tasks wait in a FIFO queue. A cancelled or timed-out child gets
    SIGTERM and, ``grace_period`` seconds later, SIGKILL. ``start_method`` is
    ``"forkserver"`` (default on Linux) or ``"spawn"``; ``"fork"`` is rejected.

    ``max_pending_messages`` bounds the messages waiting per sink, and
    ``max_pending_bytes`` their estimated size in memory (the length of each
    frame plus a fixed overhead per message). ``sink_max_pending`` and
    ``sink_max_pending_bytes`` map sink names to bounds of their own, for
    example ``{"database": 1000}``, which also apply to a sink of that name
    added later by ``set_sink``. Beyond either bound, a sink drops the oldest
    messages of the running task with the most pending, but never a
    ``finished`` message. Each sink receives its own copy of every message, so
    a sink may change the dicts it gets. The drops count in
    ``TaskStatus.dropped`` at once, and a warning in the task's stream reports
    them per sink, at most every 5 seconds and at the task's end.
    While every sink is healthy, the supervisor drops nothing. Once a sink has
    more than half a bound pending, the supervisor stops reading the jobs' log
    frames until that sink is down to a quarter; the jobs wait in
    ``logging_helper`` meanwhile. A
    sink that fails, or that delivered nothing for ``sink_stall_seconds`` while
    messages were pending, holds nobody back: the bounds and drops above apply
    to it. ``max_ended_tasks`` bounds the ended tasks kept for ``status``, and
    ``sink_drain_timeout`` how long shutdown waits for sinks.

    Threads: one drain thread, one thread per sink, and a short-lived thread per
    cancel. Call ``shutdown()`` (or use ``with``): otherwise children are only
    stopped when the web process exits, and pending sink messages are lost.
    """

    #: Stops a child: SIGTERM, wait, SIGKILL. Replace it in a subclass to
    #: change the escalation; it gets ``(send_signal, wait_exit, grace_period,
    #: on_escalate)`` and must not reap the process.
    terminate: Terminate = staticmethod(terminate)

    def __init__(
        self,
        sinks: Mapping[str, Sink] | None = None,
        *,
        max_workers: int | None = None,
        grace_period: float = 5.0,
        start_method: str | None = None,
        limits: Limits | None = None,
        max_pending_messages: int = 100_000,
        sink_max_pending: Mapping[str, int] | None = None,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        sink_max_pending_bytes: Mapping[str, int] | None = None,
        max_ended_tasks: int = 10_000,
        sink_drain_timeout: float = 5.0,
        sink_stall_seconds: float = STALL_SECONDS,
    ) -> None:
        workers = (os.cpu_count() or 1) if max_workers is None else max_workers
        _check_positive_int("max_workers", workers)
        _check_positive_int("max_pending_messages", max_pending_messages)
        _check_positive_int("max_pending_bytes", max_pending_bytes)
        _check_sink_limits("sink_max_pending", sink_max_pending)
        _check_sink_limits("sink_max_pending_bytes", sink_max_pending_bytes)
        _check_positive_int("max_ended_tasks", max_ended_tasks)
        _check_seconds("grace_period", grace_period)
        _check_seconds("sink_drain_timeout", sink_drain_timeout)
        _check_seconds("sink_stall_seconds", sink_stall_seconds)
        self._grace_period = float(grace_period)
        self._sink_drain_timeout = float(sink_drain_timeout)
        self._limits = limits or Limits()
        self._launcher = ChildLauncher(start_method)
        self._registry = TaskRegistry(workers, max_ended_tasks)
        self._shutdown_lock = threading.Lock()
        self._shutting_down = False
        self._shut_down = threading.Event()
        self._fanout = SinkFanout(
            {},
            max_pending=max_pending_messages,
            max_pending_bytes=max_pending_bytes,
            sink_max_pending=sink_max_pending,
            sink_max_pending_bytes=sink_max_pending_bytes,
            batch_size=BATCH_SIZE,
            on_dropped=self._count_dropped,
            on_report_due=self._wake_drain,
            on_drained=self._wake_drain,
            stall_seconds=float(sink_stall_seconds),
        )
        self._drain = DrainThread(
            self._registry,
            self._launcher,
            self._fanout,
            limits=self._limits,
            grace_period=self._grace_period,
            terminate_function=type(self).terminate,
        )
        for name, sink in (sinks or {}).items():
            self.set_sink(name, sink)
        self._drain.start()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()

    def start(
        self,
        task_id: str,
        target: Callable[..., Any] | str,
        *,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        total_steps: int | None = None,
        timeout: float | None = None,
    ) -> TaskStatus:
        """Queue ``target(*args, **kwargs)`` as task ``task_id`` and return at once.

        ``target`` is a module-level function or an import path
        ``"package.module:function"``. Everything is checked here: an invalid
        task id, target, argument, ``total_steps`` or ``timeout`` (seconds)
        raises before anything starts.
        """
        self._check_open()
        record = TaskRecord(
            validate_task_id(task_id),
            resolve_target(target),
            *validate_arguments(tuple(args), dict(kwargs or {})),
            total_steps=validate_total_steps(total_steps),
            timeout=validate_timeout(timeout),
            max_message_chars=self._limits.max_message_chars,
        )
        with self._registry.lock:
            if self._registry.closed:
                raise SupervisorClosedError(_CLOSED_MESSAGE)
            self._registry.add(record)
            status = record.snapshot()
        logger.info("Task %s queued: target %s", task_id, record.target)
        self._drain.wake()
        return status

    def cancel(self, task_id: str) -> bool:
        """Cancel a queued or running task; False if it is unknown or ended.

        A queued task ends ``cancelled`` at once and never starts. A running
        task's process group gets SIGTERM now and SIGKILL after the grace
        period; the call returns without waiting for either.
        """
        check_task_id_type(task_id)
        with self._registry.lock:
            record = self._registry.active.get(task_id)
            if record is None:
                return False
            state = record.state
            queued = state is TaskState.QUEUED
            if queued:
                message = self._cancel_queued(record)
            elif record.stop_reason is None:
                record.stop_reason = "cancel"
        logger.info("Task %s cancel requested while %s", task_id, state.value)
        if queued:
            logger.info("Task %s cancelled before it started", task_id)
            self._fanout.dispatch([message], {id(message): record.delivered.set})
        else:
            self._drain.wake()
        return True

    def _cancel_queued(self, record: TaskRecord) -> dict[str, Any]:
        record.move_to(TaskState.CANCELLED)
        record.finished_at = utc_now()
        message = record.stream.finished(
            TaskState.CANCELLED, None, None, None, "Task cancelled before it started"
        )
        self._registry.retire(record)
        record.release_inputs()
        record.ended.set()
        return message

    def status(self, task_id: str) -> TaskStatus:
        """Return the status of an active or recently ended task.

        Raises UnknownTaskError for an id never started here, or ended so
        long ago that it was forgotten.
        """
        check_task_id_type(task_id)
        with self._registry.lock:
            return self._registry.get(task_id).snapshot()

    def wait(self, task_id: str, timeout: float | None = None) -> TaskStatus:
        """Wait until the task ended and every sink took its ``finished`` message.

        A sink that gave up on the message counts as done. Raises TimeoutError
        after ``timeout`` seconds (None waits as long as it takes), and
        UnknownTaskError as ``status`` does.
        """
        check_task_id_type(task_id)
        seconds = validate_wait_timeout(timeout)
        with self._registry.lock:
            record = self._registry.get(task_id)
        if not record.delivered.wait(seconds):
            raise TimeoutError(
                f"task {task_id!r} did not end within {timeout} s; it is "
                f"{record.state.value}"
            )
        with self._registry.lock:
            return record.snapshot()

    def set_sink(self, name: str, sink: Sink | None) -> None:
        """Add, replace or (with None) remove the sink called ``name``.

        A replacement receives the messages still pending for the old sink.
        """
        if not isinstance(name, str):
            raise TypeError(f"invalid sink name {name!r}: use a str")
        self._fanout.set_sink(name, sink)

    def active_tasks(self) -> list[str]:
        """Return the ids of queued and running tasks, oldest first."""
        with self._registry.lock:
            return list(self._registry.active)

    def shutdown(self, cancel_running: bool = True) -> None:
        """Stop every task, the threads and the forkserver; safe to call twice.

        With ``cancel_running`` false, waits for queued and running tasks to
        end on their own first. Sinks get ``sink_drain_timeout`` seconds to
        deliver what is pending before they are closed.

        A second call waits for the first to finish, except from inside a
        sink, where it returns at once: waiting there would hold up the sink
        the first call waits for. Called from inside a sink, the shutdown does
        not wait for that sink, which delivers what is pending once it returns
        and is closed then.
        """
        with self._shutdown_lock:
            first = not self._shutting_down
            self._shutting_down = True
        if not first:
            if not self._fanout.in_sink_thread():
                self._shut_down.wait()
            return
        try:
            with self._registry.lock:
                self._registry.closed = True
            self._end_tasks(cancel_running)
            self._drain.stop()
            self._fanout.stop(self._sink_drain_timeout)
            self._launcher.close()
        finally:
            self._shut_down.set()
        logger.info("Supervisor shut down")

    def _end_tasks(self, cancel_running: bool) -> None:
        if cancel_running:
            for task_id in self.active_tasks():
                self.cancel(task_id)
            deadline: float | None = (
                time.monotonic() + self._grace_period + SHUTDOWN_MARGIN
            )
        else:
            deadline = None
        with self._registry.lock:
            records = list(self._registry.active.values())
        for record in records:
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            if not record.ended.wait(left):
                logger.error("Task %s did not end in time for shutdown", record.task_id)

    def _check_open(self) -> None:
        if self._registry.closed:
            raise SupervisorClosedError(_CLOSED_MESSAGE)

    def _count_dropped(self, sink_name: str, counts: dict[str, int]) -> None:
        with self._registry.lock:
            for task_id, count in counts.items():
                record = self._registry.active.get(task_id)
                if record is None:
                    record = self._registry.ended.get(task_id)
                if record is not None:
                    record.dropped += count

    def _wake_drain(self) -> None:
        self._drain.wake()


_CLOSED_MESSAGE = "the supervisor was shut down; create a new one to start tasks"


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"invalid {name} {value!r}: use a positive int")


def _check_sink_limits(option: str, limits: Mapping[str, int] | None) -> None:
    if limits is None:
        return
    if not isinstance(limits, Mapping):
        raise TypeError(
            f"invalid {option} {limits!r}: use a mapping of sink names to positive ints"
        )
    for name, limit in limits.items():
        if not isinstance(name, str):
            raise TypeError(f"invalid sink name {name!r} in {option}: use a str")
        _check_positive_int(f"{option}[{name!r}]", limit)


def _check_seconds(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"invalid {name} {value!r}: use seconds >= 0")
