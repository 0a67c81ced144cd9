"""Errors raised by the supervisor's public API."""

from __future__ import annotations

__all__ = [
    "InvalidStateTransitionError",
    "InvalidTargetError",
    "InvalidTaskIdError",
    "SupervisorClosedError",
    "SupervisorError",
    "TaskAlreadyActiveError",
    "UnknownTaskError",
    "UnpicklableArgumentsError",
]


class SupervisorError(Exception):
    """Base class of every error the supervisor raises."""


class InvalidTaskIdError(SupervisorError, ValueError):
    """A task id does not match ``^[A-Za-z0-9_-]{1,64}$``."""


class TaskAlreadyActiveError(SupervisorError):
    """A task with this id is still queued or running."""


class InvalidTargetError(SupervisorError, ValueError):
    """A target is not an importable module-level callable."""


class UnpicklableArgumentsError(SupervisorError, ValueError):
    """An argument of the job cannot be pickled for the child process."""


class UnknownTaskError(SupervisorError, LookupError):
    """No task with this id is known, or it was evicted from the ended tasks."""


class SupervisorClosedError(SupervisorError):
    """The supervisor was shut down and accepts no new tasks."""


class InvalidStateTransitionError(SupervisorError, RuntimeError):
    """A task was moved between states in an order the state machine forbids."""
