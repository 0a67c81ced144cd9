"""The drain thread: one thread reads every child's pipes and ends its tasks."""

from __future__ import annotations

import collections
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

import orjson

from worker._spec import FRAME_KINDS, FRAME_LOG, Limits

from ._escalation import terminate
from ._framing import LineSplitter
from ._outcome import decide_outcome
from ._process import ChildLauncher
from ._registry import TaskRegistry
from ._sinks import SinkFanout
from ._status import ErrorInfo, TaskState
from ._stream import Message, utc_now
from ._task import TaskRecord

__all__ = ["DrainThread", "Terminate"]

logger = logging.getLogger(__name__)

READ_SIZE = 1 << 20
#: Bytes of a rejected frame quoted in the warning about it.
QUOTE_BYTES = 80
MAX_FAILURE_DELAY = 1.0
#: Seconds to wait for a child killed at shutdown before giving up on it.
KILL_WAIT = 5.0

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
        self._outbox: list[Message] = []
        self._on_delivered: dict[int, Callable[[], None]] = {}
        #: (sink name, dropped messages per task id), appended by sink threads.
        self.drop_reports: collections.deque[tuple[str, dict[str, int]]] = (
            collections.deque()
        )
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="supervisor-drain", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Make the thread look at the queue, cancels and timeouts now."""
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # A wake-up is already pending.
        except OSError:
            pass  # Closed after stop(); nothing left to wake.

    def stop(self) -> None:
        """Stop the thread after it killed and reaped every child left."""
        self._stopping = True
        self.wake()
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def report_dropped(self, sink_name: str, counts: dict[str, int]) -> None:
        """Note messages a sink gave up on; called from the sink's thread."""
        self.drop_reports.append((sink_name, counts))
        self.wake()

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
        self._start_queued_tasks()
        self._stop_requested_tasks()
        self._report_dropped_messages()
        self._dispatch_messages()

    def _warm_up(self) -> None:
        try:
            self._launcher.warm_up()
        except Exception:
            logger.exception("Could not start the forkserver; retrying per task")

    def _wait_for_events(self) -> set[Any]:
        handles = [self._wake_r, *self._pipes, *self._sentinels]
        ready = set(wait(handles, self._seconds_to_next_deadline()))
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
        if not deadlines:
            return None
        return max(min(deadlines) - time.monotonic(), 0.0)

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
        if discarded:
            self._warn(
                record,
                f"discarded {discarded} {kind} line(s) longer than "
                f"{self._limits.max_frame_bytes} bytes",
            )
        if kind == "data":
            self._take_frames(record, lines)
        else:
            for line in lines:
                self._take_output_line(record, kind, line)
        return True

    def _take_frames(self, record: TaskRecord, lines: list[bytes]) -> None:
        rejected: list[bytes] = []
        for line in lines:
            try:
                frame = orjson.loads(line)
                kind = frame["k"] if isinstance(frame, dict) else None
                if kind == FRAME_LOG:
                    self._outbox.extend(record.stream.log_frame(frame))
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
        self._outbox.append(record.stream.output_line(kind, text))

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
            if record is not None:
                self._finish(record)

    def _finish(self, record: TaskRecord) -> None:
        record.mark_exited()
        record.sweep_group()
        self._read_remaining_output(record)
        exitcode = self._reap(record)
        stderr_tail = record.stderr_tail.decode("utf-8", "replace")
        outcome = decide_outcome(
            record.report, record.stop_reason, exitcode, stderr_tail, record.timeout
        )
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
        message = record.stream.finished(
            record.state, record.exit_code, record.signal, record.error, summary
        )
        self._outbox.append(message)
        self._on_delivered[id(message)] = record.delivered.set
        self._registry.retire(record)
        record.release_inputs()
        record.ended.set()

    def _read_remaining_output(self, record: TaskRecord) -> None:
        # The child is gone, so everything it wrote is already in the pipes;
        # reading until they are empty (not until end of file) keeps a
        # grandchild that escaped the group from holding the task open.
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
        exitcode = child.process.exitcode
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
                if record.child is None or record.stop_started:
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
        while self.drop_reports:
            sink_name, counts = self.drop_reports.popleft()
            for task_id, count in counts.items():
                self._report_dropped(sink_name, task_id, count)

    def _report_dropped(self, sink_name: str, task_id: str, count: int) -> None:
        with self._registry.lock:
            record = self._registry.active.get(task_id)
            if record is None:
                record = self._registry.ended.get(task_id)
            if record is None:
                return
            record.dropped += count
            running = record.state is TaskState.RUNNING
        if running:
            self._warn(
                record,
                f"sink {sink_name!r} lost {count} message(s) of this task because "
                "too many were pending",
            )

    def _dispatch_messages(self) -> None:
        if not self._outbox:
            return
        messages, self._outbox = self._outbox, []
        on_delivered, self._on_delivered = self._on_delivered, {}
        self._fanout.dispatch(messages, on_delivered)

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
        self._dispatch_messages()
