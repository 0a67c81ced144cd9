"""The supervisor's record of one task, from queued to ended."""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import threading
from typing import Any

from ._escalation import signal_process_group
from ._framing import LineSplitter
from ._process import LaunchedChild
from ._procfs import ProcessId, find_descendants, is_running, read_start_time
from ._status import ErrorInfo, TaskState, TaskStatus, check_transition
from ._stream import MessageStream

__all__ = ["StopReason", "TaskRecord"]

#: Why the supervisor stops a running task: ``"cancel"`` or ``"timeout"``.
StopReason = str

#: Bytes of the child's stderr kept for the error of a crash.
STDERR_TAIL_BYTES = 64 * 1024


class TaskRecord:
    """Everything the supervisor tracks about one task.

    ``state`` and the fields that describe the outcome change under the
    supervisor's lock; the pipes, splitters and stream belong to the drain
    thread.
    """

    def __init__(
        self,
        task_id: str,
        target: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        total_steps: int | None,
        timeout: float | None,
        max_message_chars: int,
    ) -> None:
        self.task_id = task_id
        self.target = target
        self.args = args
        self.kwargs = kwargs
        self.total_steps = total_steps
        self.timeout = timeout
        self.state = TaskState.QUEUED
        self.stream = MessageStream(task_id, max_message_chars)
        self.queued_at = datetime.datetime.now(datetime.UTC)
        self.started_at: datetime.datetime | None = None
        self.finished_at: datetime.datetime | None = None
        self.child: LaunchedChild | None = None
        self.pid: int | None = None
        #: The child's start time in clock ticks after boot, to tell it from
        #: a later process with the same pid; None where it cannot be read.
        self.start_time: int | None = None
        #: Whether the forkserver died while the child ran, so that its exit
        #: status is unknown.
        self.orphaned = False
        #: Descendants of the child seen while it ran, including those that
        #: left its process group; killed with the group once the child ends.
        self.descendants: set[ProcessId] = set()
        self.exit_code: int | None = None
        self.signal: str | None = None
        self.error: ErrorInfo | None = None
        self.dropped = 0
        #: The first report frame (result, error, exit or cancelled), if any.
        self.report: dict[str, Any] | None = None
        self._stop_reason: StopReason | None = None
        #: Whether the report frame was read before a cancel or timeout was
        #: requested; only then does the report decide the outcome.
        self.reported_before_stop = False
        self.stop_started = False
        #: Monotonic time after which a running task is timed out.
        self.deadline: float | None = None
        self.splitters: dict[int, LineSplitter] = {}
        self.stderr_tail = bytearray()
        #: Set once the drain thread has seen the child exit.
        self.exited = threading.Event()
        #: Set once the task reached a final state.
        self.ended = threading.Event()
        #: Set once the task ended and its ``finished`` message went through
        #: every sink.
        self.delivered = threading.Event()
        self._signal_lock = threading.Lock()

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the supervisor stops the task (cancel or timeout), if it does."""
        return self._stop_reason

    @stop_reason.setter
    def stop_reason(self, reason: StopReason | None) -> None:
        if reason is not None and self._stop_reason is None:
            self.reported_before_stop = self.report is not None
        self._stop_reason = reason

    def __repr__(self) -> str:
        if self.state is TaskState.QUEUED:
            detail = "queued"
        elif self.state is TaskState.RUNNING:
            detail = f"running, pid {self.pid}"
        elif self.signal is not None:
            detail = f"{self.state.value}, signal {self.signal}"
        else:
            detail = f"{self.state.value}, exit code {self.exit_code}"
        return f"<TaskRecord {self.task_id!r} {detail}>"

    def move_to(self, state: TaskState) -> None:
        """Change state, raising if the state machine forbids the move."""
        check_transition(self.task_id, self.state, state)
        self.state = state

    def note_start_time(self) -> None:
        """Record the child's start time, just after its launch."""
        if self.pid is not None:
            self.start_time = read_start_time(self.pid)

    def child_is_running(self) -> bool:
        """Return whether the child's process still runs (a zombie does not).

        Where its start time is unknown, the sentinel's word is taken and this
        returns False.
        """
        if self.pid is None or self.start_time is None:
            return False
        return is_running(ProcessId(self.pid, self.start_time))

    def send_signal(self, signum: int) -> bool:
        """Signal the child's process group and its descendants outside it.

        The descendants are looked up now, while the child still links them to
        itself, and remembered for `sweep_group`. Returns False once the child
        has exited.
        """
        with self._signal_lock:
            if self.pid is None or self.exited.is_set():
                return False
            if self.start_time is not None:
                self.descendants.update(find_descendants(self.pid))
            sent = signal_process_group(self.pid, signum)
            self._signal_descendants(signum)
            return sent

    def _signal_descendants(self, signum: int) -> None:
        # Those still in the child's group got the signal with the group.
        for process in self.descendants:
            if process.group != self.pid:
                process.send_signal(signum)

    def mark_exited(self) -> None:
        """Record that the child exited, so no signal goes to a reused pid."""
        with self._signal_lock:
            self.exited.set()

    def sweep_group(self) -> None:
        """Kill what is left of the child's process group after it exited.

        Only the group is signalled: the exited child's own pid may already
        belong to another process, but a group id stays reserved while the
        group has members.

        The descendants that `send_signal` found are killed too, in whatever
        group or session they are now.

        NOTE: a grandchild that got SIGTERM with the job is killed as soon as
        the job's process exits, even if its own cleanup needed longer. A
        grandchild that left the group (``setsid``) of a job that was never
        cancelled is not found here once the job's process is gone, because
        the child, its subreaper, no longer exists to keep the parent link.
        """
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for process in self.descendants:
            process.send_signal(signal.SIGKILL)

    def keep_stderr(self, chunk: bytes) -> None:
        self.stderr_tail += chunk
        if len(self.stderr_tail) > STDERR_TAIL_BYTES:
            del self.stderr_tail[:-STDERR_TAIL_BYTES]

    def release_inputs(self) -> None:
        """Drop what only starting and running needed, once the task ended."""
        self.args = ()
        self.kwargs = {}
        self.child = None
        self.splitters = {}
        self.stderr_tail = bytearray()

    def snapshot(self) -> TaskStatus:
        """Return an immutable status of the task as it is now."""
        return TaskStatus(
            task_id=self.task_id,
            state=self.state,
            progress=self.stream.progress.value,
            exit_code=self.exit_code,
            signal=self.signal,
            error=self.error,
            queued_at=self.queued_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            message_count=self.stream.seq,
            dropped=self.dropped,
            pid=self.pid,
        )
