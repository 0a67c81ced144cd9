"""The drain thread: one thread reads every child's pipes and ends its tasks."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any, TypeVar

import orjson

from worker._spec import FRAME_KINDS, FRAME_LOG, Limits

from ._escalation import terminate
from ._framing import LineSplitter
from ._outcome import Outcome, decide_outcome
from ._process import ChildLauncher
from ._registry import TaskRegistry
from ._sinks import (
    HIGH_WATER_DIVISOR,
    LOW_WATER_DIVISOR,
    MESSAGE_OVERHEAD_BYTES,
    DropReport,
    SinkFanout,
)
from ._status import ErrorInfo, TaskState
from ._stream import Message, utc_now
from ._task import TaskRecord

__all__ = ["DrainThread", "Terminate"]

logger = logging.getLogger(__name__)

READ_SIZE = 1 << 20
#: Bytes of a rejected frame quoted in the warning about it.
QUOTE_BYTES = 80
MAX_FAILURE_DELAY = 1.0
#: Seconds the thread waits at most for events before it checks deadlines again.
MAX_WAIT = 3600.0
#: Seconds to wait for a child killed at shutdown before giving up on it.
KILL_WAIT = 5.0
#: Seconds between two checks whether a child whose forkserver died still runs.
ORPHAN_POLL_INTERVAL = 0.5
#: Seconds between two checks of the sinks while log frames are held back,
#: in case a sink stalls instead of draining.
HOLD_POLL_INTERVAL = 0.1

_V = TypeVar("_V")

Terminate = Callable[
    [Callable[[int], bool], Callable[[float], bool], float, Callable[[], None]], None
]
_FINISH_LEVELS = {
    TaskState.SUCCEEDED: logging.INFO,
    TaskState.CANCELLED: logging.INFO,
    TaskState.TIMED_OUT: logging.WARNING,
    TaskState.FAILED: logging.WARNING,
    TaskState.CRASHED: logging.ERROR,
}


class DrainThread:
    """Read every child's pipes, turn what arrives into messages, end tasks.

    One thread waits on all data, stdout and stderr pipes, every process
    sentinel and a self-pipe at once, so a dead child is noticed without
    polling, and it owns the pipes and the message streams of running tasks.
    It also starts queued tasks and starts the escalation of cancels and
    timeouts, which runs in short-lived helper threads.
    """

    def __init__(
        self,
        registry: TaskRegistry,
        launcher: ChildLauncher,
        fanout: SinkFanout,
        *,
        limits: Limits,
        grace_period: float,
        terminate_function: Terminate = terminate,
    ) -> None:
        self._registry = registry
        self._launcher = launcher
        self._fanout = fanout
        self._limits = limits
        self._grace_period = grace_period
        self._terminate = terminate_function
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._pipes: dict[int, tuple[TaskRecord, str]] = {}
        self._sentinels: dict[int, TaskRecord] = {}
        #: Tasks whose forkserver died while their child still runs. No
        #: sentinel reports their end, so they are checked at every wake-up
        #: (their pipes' end of file is one) and every `ORPHAN_POLL_INTERVAL`.
        self._orphans: list[TaskRecord] = []
        self._outbox: list[Message] = []
        self._on_delivered: dict[int, Callable[[], None]] = {}
        #: ``id()`` of the drop reports in the outbox.
        self._reports: set[int] = set()
        #: Estimated bytes per ``id()`` of the outbox's messages built from
        #: frames, which may carry large options.
        self._sizes: dict[int, int] = {}
        #: ``id()`` of the outbox's messages known to hold no dict or list.
        self._flat: set[int] = set()
        #: Set while a healthy sink has too much pending: the data pipes are
        #: not read, so the jobs wait in their writes and nothing is dropped.
        self._holding = False
        #: Output lines read into the outbox while log frames were held back.
        self._held_lines = 0
        #: Exited tasks whose outcome is decided, ended once the outbox is empty.
        self._ending: list[tuple[TaskRecord, Outcome]] = []
        self._stopping = False
        self._wake_lock = threading.Lock()
        self._wake_closed = False
        self._thread = threading.Thread(
            target=self._run, name="supervisor-drain", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Make the thread look at the queue, cancels and timeouts now."""
        # Under the lock, because after stop() closed the pipe its fd numbers
        # may belong to another supervisor's pipe.
        with self._wake_lock:
            if self._wake_closed:
                return
            # BlockingIOError means that a wake-up is already pending.
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_w, b"\0")

    def stop(self) -> None:
        """Stop the thread after it killed and reaped every child left.

        Safe to call twice: the self-pipe is closed once.
        """
        self._stopping = True
        self.wake()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        with self._wake_lock:
            if self._wake_closed:
                return
            self._wake_closed = True
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _run(self) -> None:
        self._warm_up()
        failures = 0
        while not self._stopping:
            try:
                self._run_once()
                failures = 0
            except Exception:
                failures += 1
                delay = min(0.01 * 2**failures, MAX_FAILURE_DELAY)
                logger.exception("Drain thread failed; retrying in %.2f s", delay)
                time.sleep(delay)
        self._kill_remaining()

    def _run_once(self) -> None:
        ready = self._wait_for_events()
        self._read_ready_pipes(ready)
        self._finish_exited_tasks(ready)
        self._finish_exited_orphans()
        self._start_queued_tasks()
        self._stop_requested_tasks()
        self._report_dropped_messages()
        self._dispatch_messages()
        self._end_exited_tasks()
        self._dispatch_messages()
        self._update_holding()

    def _warm_up(self) -> None:
        try:
            self._launcher.warm_up()
        except Exception:
            logger.exception("Could not start the forkserver; retrying per task")

    def _update_holding(self) -> None:
        """Hold the data pipes back while a healthy sink has too much pending.

        Reading resumes once the held messages went out and every healthy
        sink is down to its low-water mark; the sinks wake the thread then.
        """
        divisor = LOW_WATER_DIVISOR if self._holding else HIGH_WATER_DIVISOR
        hold_back = bool(self._outbox) or self._fanout.healthy_above(divisor)
        if hold_back and not self._holding:
            logger.debug("Holding the jobs' log frames back until the sinks catch up")
        self._holding = hold_back
        if hold_back:
            self._fanout.want_drained()

    def _wait_for_events(self) -> set[Any]:
        pipes = self._pipes
        if self._holding:
            pipes = {fd: v for fd, v in pipes.items() if v[1] != "data"}
        handles = [self._wake_r, *pipes, *self._sentinels]
        timeout = self._seconds_to_next_deadline()
        if self._holding and (timeout is None or timeout > HOLD_POLL_INTERVAL):
            timeout = HOLD_POLL_INTERVAL
        ready = set(wait(handles, timeout))
        if self._wake_r in ready:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        return ready

    def _seconds_to_next_deadline(self) -> float | None:
        with self._registry.lock:
            deadlines = [
                r.deadline
                for r in self._registry.running()
                if r.deadline is not None and r.stop_reason is None
            ]
        if self._orphans:
            deadlines.append(time.monotonic() + ORPHAN_POLL_INTERVAL)
        if not deadlines:
            return None
        # poll() rejects waits longer than about 24 days, so wake up hourly.
        return min(max(min(deadlines) - time.monotonic(), 0.0), MAX_WAIT)

    def _read_ready_pipes(self, ready: set[Any]) -> None:
        for fd in ready:
            if fd in self._pipes:
                self._read(fd)

    def _read(self, fd: int) -> bool:
        """Read once from ``fd``; False at end of file or when it is empty."""
        record, kind = self._pipes[fd]
        try:
            chunk = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return False
        if not chunk:
            self._close_pipe(fd)
            return False

        if kind == "stderr":
            record.keep_stderr(chunk)
        lines, discarded = record.splitters[fd].feed(chunk)
        if kind == "data":
            self._take_frames(record, lines)
        else:
            for line in lines:
                self._take_output_line(record, kind, line)
        # After the lines, so that what the child wrote before the long line
        # keeps its place in the stream.
        if discarded:
            self._warn(
                record,
                f"discarded {discarded} {kind} line(s) longer than "
                f"{self._limits.max_frame_bytes} bytes",
            )
        return True

    def _take_frames(self, record: TaskRecord, lines: list[bytes]) -> None:
        rejected: list[bytes] = []
        for line in lines:
            try:
                frame = orjson.loads(line)
                kind = frame["k"] if isinstance(frame, dict) else None
                if kind == FRAME_LOG:
                    messages = record.stream.log_frame(frame)
                    self._sizes[id(messages[0])] = len(line) + MESSAGE_OVERHEAD_BYTES
                    # Options are the only values a log frame may nest.
                    first_flat = 1 if frame.get("options") else 0
                    self._flat.update(map(id, messages[first_flat:]))
                    self._outbox.extend(messages)
                elif kind in FRAME_KINDS:
                    if record.report is None:
                        record.report = frame
                else:
                    rejected.append(line)
            except Exception:
                rejected.append(line)
        if rejected:
            self._warn(
                record,
                f"ignored {len(rejected)} frame(s) that are not valid JSON objects "
                f"of a known kind; the first began {rejected[0][:QUOTE_BYTES]!r}",
            )

    def _take_output_line(self, record: TaskRecord, kind: str, line: bytes) -> None:
        text = line.decode("utf-8", "replace").removesuffix("\r")
        message = record.stream.output_line(kind, text)
        if self._holding:
            self._held_lines += 1
        self._flat.add(id(message))
        self._outbox.append(message)

    def _close_pipe(self, fd: int) -> None:
        record, kind = self._pipes.pop(fd)
        tail = record.splitters.pop(fd).finish()
        os.close(fd)
        if not tail:
            return
        if kind == "data":
            self._warn(
                record,
                f"dropped an unterminated frame of {len(tail)} bytes at the end "
                "of the data pipe",
            )
        else:
            self._take_output_line(record, kind, tail)

    def _warn(self, record: TaskRecord, text: str) -> None:
        self._outbox.append(record.stream.warning(text))

    def _finish_exited_tasks(self, ready: set[Any]) -> None:
        for handle in ready:
            record = self._sentinels.pop(handle, None)
            if record is None:
                continue
            if record.child_is_running():
                self._adopt_orphan(record)
            else:
                self._finish(record)

    def _adopt_orphan(self, record: TaskRecord) -> None:
        """Keep a task whose sentinel fired because the forkserver died.

        With forkserver, the sentinel is a socket to the forkserver, which
        reports the exit status of its children. At its end of file the
        standard library makes up the exit code 255, so the child's own end
        is detected from its process instead, and its exit code stays unknown.
        """
        logger.error(
            "Task %s lost its forkserver, but its child pid %s still runs; "
            "watching the process instead",
            record.task_id,
            record.pid,
        )
        record.orphaned = True
        self._orphans.append(record)
        # Reaps the dead forkserver and starts a new one for the next tasks.
        self._warm_up()

    def _finish_exited_orphans(self) -> None:
        if not self._orphans:
            return
        for record in [r for r in self._orphans if not r.child_is_running()]:
            self._orphans.remove(record)
            self._finish(record)

    def _finish(self, record: TaskRecord) -> None:
        """Read what the exited child left, decide its outcome, and end the
        task once its messages went to the sinks."""
        record.mark_exited()
        record.sweep_group()
        self._read_remaining_output(record)
        exitcode = self._reap(record)
        stderr_tail = record.stderr_tail.decode("utf-8", "replace")
        # A job that reported before it was asked to stop ended on its own.
        stop_reason = None if record.reported_before_stop else record.stop_reason
        outcome = decide_outcome(
            record.report,
            stop_reason,
            exitcode,
            stderr_tail,
            record.timeout,
            exit_status_known=not record.orphaned,
        )
        self._ending.append((record, outcome))
        self._end_exited_tasks()

    def _end_exited_tasks(self, *, force: bool = False) -> None:
        """End the exited tasks once the outbox went to the sinks.

        Sinks drop for their limits when messages are handed over, so the drop
        report built by _end() must come after the task's last messages.
        ``force`` hands the outbox over whatever the sinks have pending.
        """
        if not self._ending:
            return
        self._dispatch_messages(force=force)
        if self._outbox:
            return
        ending, self._ending = self._ending, []
        for record, outcome in ending:
            self._conclude(record, outcome)

    def _conclude(self, record: TaskRecord, outcome: Outcome) -> None:
        with self._registry.lock:
            record.move_to(outcome.state)
            record.exit_code = outcome.exit_code
            record.signal = outcome.signal
            record.error = outcome.error
            self._end(record, outcome.summary)
        logger.log(
            _FINISH_LEVELS[outcome.state],
            "Task %s %s: exit code %s, signal %s",
            record.task_id,
            outcome.state.value,
            outcome.exit_code,
            outcome.signal,
        )

    def _end(self, record: TaskRecord, summary: str) -> None:
        """Queue the ``finished`` message and retire the task; hold the lock."""
        record.finished_at = utc_now()
        for report in self._fanout.take_unreported(record.task_id):
            self._report_drops(record, report)
        message = record.stream.finished(
            record.state, record.exit_code, record.signal, record.error, summary
        )
        self._outbox.append(message)
        self._on_delivered[id(message)] = record.delivered.set
        self._registry.retire(record)
        record.release_inputs()
        record.ended.set()

    def _read_remaining_output(self, record: TaskRecord) -> None:
        # The child is gone, so everything it wrote is already in the pipes.
        # Reading until they are empty, not until end of file, stops a
        # grandchild that escaped the group from keeping the task open.
        for fd in list(record.splitters):
            os.set_blocking(fd, False)
            while fd in self._pipes and self._read(fd):
                pass
            if fd in self._pipes:
                self._close_pipe(fd)

    def _reap(self, record: TaskRecord) -> int | None:
        child = record.child
        if child is None:
            return None
        child.process.join()
        # An orphan's join() returns the code the standard library made up.
        exitcode = None if record.orphaned else child.process.exitcode
        child.process.close()
        os.close(child.alive_fd)
        return exitcode

    def _start_queued_tasks(self) -> None:
        while True:
            with self._registry.lock:
                record = self._registry.next_to_start()
                if record is None:
                    return
                record.move_to(TaskState.RUNNING)
                record.started_at = utc_now()
            self._launch(record)

    def _launch(self, record: TaskRecord) -> None:
        try:
            child = self._launcher.launch(
                record.task_id,
                record.target,
                record.args,
                record.kwargs,
                record.total_steps,
                self._limits,
            )
        except Exception as exc:
            self._fail_launch(record, exc)
            return

        with self._registry.lock:
            record.child = child
            record.pid = child.process.pid
            record.note_start_time()
            if record.timeout is not None:
                record.deadline = time.monotonic() + record.timeout
            self._outbox.append(record.stream.started(record.pid, record.target))
        for fd, kind in (
            (child.data_fd, "data"),
            (child.stdout_fd, "stdout"),
            (child.stderr_fd, "stderr"),
        ):
            self._pipes[fd] = (record, kind)
            record.splitters[fd] = LineSplitter(self._limits.max_frame_bytes)
        self._sentinels[child.process.sentinel] = record
        logger.info(
            "Task %s started: pid %s, target %s",
            record.task_id,
            record.pid,
            record.target,
        )

    def _fail_launch(self, record: TaskRecord, exc: Exception) -> None:
        logger.error("Task %s could not be started", record.task_id, exc_info=exc)
        with self._registry.lock:
            record.move_to(TaskState.FAILED)
            record.error = ErrorInfo(
                type=type(exc).__qualname__,
                message=f"the child process could not be started: {exc}",
                traceback="".join(traceback.format_exception(exc)),
            )
            self._end(record, f"Task failed: {record.error.message}")

    def _stop_requested_tasks(self) -> None:
        now = time.monotonic()
        to_stop = []
        with self._registry.lock:
            for record in self._registry.running():
                exited = record.exited.is_set()
                if record.child is None or record.stop_started or exited:
                    continue
                if record.deadline is not None and now >= record.deadline:
                    record.stop_reason = record.stop_reason or "timeout"
                if record.stop_reason is not None:
                    record.stop_started = True
                    to_stop.append(record)
        for record in to_stop:
            self._start_escalation(record)

    def _start_escalation(self, record: TaskRecord) -> None:
        if record.stop_reason == "timeout":
            logger.warning(
                "Task %s timed out after %s s; sending SIGTERM to process group %s",
                record.task_id,
                record.timeout,
                record.pid,
            )
        else:
            logger.info(
                "Task %s cancelled; sending SIGTERM to process group %s",
                record.task_id,
                record.pid,
            )
        thread = threading.Thread(
            target=self._escalate,
            args=(record,),
            name=f"supervisor-stop-{record.task_id}",
            daemon=True,
        )
        thread.start()

    def _escalate(self, record: TaskRecord) -> None:
        def log_escalation() -> None:
            logger.warning(
                "Task %s did not exit within %s s of SIGTERM; sending SIGKILL to "
                "process group %s",
                record.task_id,
                self._grace_period,
                record.pid,
            )

        try:
            self._terminate(
                record.send_signal,
                record.exited.wait,
                self._grace_period,
                log_escalation,
            )
        except Exception:
            logger.exception("Task %s could not be stopped", record.task_id)

    def _report_dropped_messages(self) -> None:
        for report in self._fanout.take_due_reports():
            with self._registry.lock:
                record = self._registry.active.get(report.task_id)
                running = record is not None and record.state is TaskState.RUNNING
            # The status already counts the drops of an ended task, whose
            # stream takes no more messages.
            if record is not None and running:
                self._report_drops(record, report)

    def _report_drops(self, record: TaskRecord, report: DropReport) -> None:
        if report.over_bytes is None:
            limit = f"{report.max_pending}"
        else:
            limit = f"{report.over_bytes} bytes"
        message = record.stream.warning(
            f"sink {report.sink!r} lost {report.dropped} message(s) of this task "
            f"because more than {limit} were pending"
        )
        self._outbox.append(message)
        self._reports.add(id(message))
        logger.warning(
            "Sink %s dropped %d messages of task %s because more than %s were pending",
            report.sink,
            report.dropped,
            record.task_id,
            limit,
        )

    def _dispatch_messages(self, *, force: bool = False) -> None:
        """Hand the outbox to the sinks, as much as the healthy ones can take.

        The rest stays in the outbox, in order; ``force`` hands over all.
        """
        if not self._outbox:
            return
        room = None if force else self._fanout.room()
        # Output lines are still read while log frames are held back, so a
        # child flooding stdout is bounded here: past a sink's bound, the
        # sinks take them and drop for their limits.
        if self._held_lines > self._fanout.max_pending:
            room = None
        if room is None or room >= len(self._outbox):
            messages, self._outbox = self._outbox, []
            on_delivered, self._on_delivered = self._on_delivered, {}
            reports, self._reports = self._reports, set()
            sizes, self._sizes = self._sizes, {}
            flat, self._flat = self._flat, set()
        elif room == 0:
            return
        else:
            messages, self._outbox = self._outbox[:room], self._outbox[room:]
            ids = {id(message) for message in messages}
            on_delivered = _take(self._on_delivered, ids)
            sizes = _take(self._sizes, ids)
            reports = self._reports & ids
            self._reports -= reports
            flat = self._flat & ids
            self._flat -= flat
        if not self._outbox:
            self._held_lines = 0
        self._fanout.dispatch(messages, on_delivered, reports, sizes, flat)

    def _kill_remaining(self) -> None:
        """Kill, reap and end every task still running when the thread stops."""
        for handle, record in list(self._sentinels.items()):
            logger.warning(
                "Task %s still running at shutdown; killing it", record.task_id
            )
            record.stop_reason = record.stop_reason or "cancel"
            record.send_signal(signal.SIGKILL)
            if not wait([handle], KILL_WAIT):
                logger.error("Task %s did not die after SIGKILL", record.task_id)
            del self._sentinels[handle]
            self._finish(record)
        for record in list(self._orphans):
            logger.warning(
                "Task %s still running at shutdown; killing it", record.task_id
            )
            record.stop_reason = record.stop_reason or "cancel"
            record.send_signal(signal.SIGKILL)
            deadline = time.monotonic() + KILL_WAIT
            while record.child_is_running() and time.monotonic() < deadline:
                time.sleep(0.05)
            self._orphans.remove(record)
            self._finish(record)
        self._end_exited_tasks(force=True)
        self._dispatch_messages(force=True)


def _take(values: dict[int, _V], keys: set[int]) -> dict[int, _V]:
    """Remove and return the entries of ``values`` whose key is in ``keys``."""
    return {key: values.pop(key) for key in keys & values.keys()}
