"""Task states, the transitions between them, and the status snapshot."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Any

from .exceptions import InvalidStateTransitionError

__all__ = ["ErrorInfo", "TaskState", "TaskStatus", "check_transition"]


class TaskState(enum.StrEnum):
    """Lifecycle state of a task; a final state never changes again."""

    #: Accepted, waiting for a free worker slot.
    QUEUED = "queued"
    #: Its child process was started.
    RUNNING = "running"
    #: The job returned, or raised ``SystemExit(0)``.
    SUCCEEDED = "succeeded"
    #: The job raised an exception, or ``SystemExit`` with a non-zero code.
    FAILED = "failed"
    #: The child died without reporting: a signal, or ``os._exit``.
    CRASHED = "crashed"
    #: A cancel was requested, and the child ended after it.
    CANCELLED = "cancelled"
    #: The task ran longer than its timeout and was stopped.
    TIMED_OUT = "timed_out"
    #: The process supervising the task died; set by a shared store, never here.
    LOST = "lost"

    @property
    def is_final(self) -> bool:
        """Whether the task has ended."""
        return self not in (TaskState.QUEUED, TaskState.RUNNING)


_ENDINGS = frozenset(
    {
        TaskState.SUCCEEDED,
        TaskState.FAILED,
        TaskState.CRASHED,
        TaskState.CANCELLED,
        TaskState.TIMED_OUT,
    }
)
_ALLOWED: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset({TaskState.RUNNING, TaskState.CANCELLED}),
    TaskState.RUNNING: _ENDINGS,
}


def check_transition(task_id: str, current: TaskState, new: TaskState) -> None:
    """Raise unless a task may move from ``current`` to ``new``."""
    allowed = _ALLOWED.get(current, frozenset())
    if new not in allowed:
        expected = ", ".join(sorted(allowed)) or "no further state"
        raise InvalidStateTransitionError(
            f"task {task_id!r} cannot move from {current.value!r} to "
            f"{new.value!r}: expected {expected}"
        )


@dataclasses.dataclass(frozen=True)
class ErrorInfo:
    """Cause of a failed or crashed task."""

    #: Exception type as ``module.QualName`` (bare name for builtins), or
    #: ``"crashed"`` for a child that died without reporting.
    type: str
    message: str
    traceback: str

    def to_dict(self) -> dict[str, str]:
        """Return the fields as a JSON-safe dict."""
        return dataclasses.asdict(self)


def _isoformat(moment: datetime.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclasses.dataclass(frozen=True)
class TaskStatus:
    """A snapshot of one task, taken when it was requested."""

    task_id: str
    state: TaskState
    #: Latest progress in percent; once ended, the final value (100 on success).
    progress: int | None = None
    exit_code: int | None = None
    #: Name of the signal that ended the child, such as ``"SIGKILL"``.
    signal: str | None = None
    error: ErrorInfo | None = None
    queued_at: datetime.datetime | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    #: Messages the task's stream carried so far, ``started`` and ``finished``
    #: included.
    message_count: int = 0
    #: Messages that a sink gave up on for this task, summed over the sinks.
    dropped: int = 0
    pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as JSON-safe values (ISO 8601 strings for times)."""
        return {
            "task_id": self.task_id,
            "state": self.state.value,
            "progress": self.progress,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "error": None if self.error is None else self.error.to_dict(),
            "queued_at": _isoformat(self.queued_at),
            "started_at": _isoformat(self.started_at),
            "finished_at": _isoformat(self.finished_at),
            "message_count": self.message_count,
            "dropped": self.dropped,
            "pid": self.pid,
        }
