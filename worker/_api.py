"""The functions migration code calls, with the names of BIMigrator's client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker._runtime import RUNTIME


def logging_helper(
    message: str,
    progress: float | None = None,
    message_type: str = "info",
    options: Mapping[Any, Any] | None = None,
) -> None:
    """Send a log message with its progress to the supervisor.

    ``progress`` is a percentage; without it, the step counter's percentage is
    sent when `set_task_info` gave a step count. A value that is not a number
    (``"75"``, ``True``, NaN) is sent as no progress, and the supervisor adds a
    warning to the stream. ``message_type`` is ``"info"``, ``"warning"`` or
    ``"error"``. ``options`` are extra fields for the message; values that JSON
    cannot hold are sent as text, and they never replace the message's own
    fields. The message is sent as given, never %-formatted.

    The message is written to the supervisor's pipe before the call returns.
    When the supervisor reads more slowly than the job logs, the pipe fills and
    the call blocks until there is room, so nothing is dropped.

    This function raises nothing of its own: a value it cannot encode and a
    broken pipe only lead to a line on stderr, once per kind of failure. Only
    `Cancelled` (and KeyboardInterrupt) can come out of it, when the task is
    cancelled during the call; a cancel that arrives while the message is being
    written is raised once the message is complete. In a process that the job
    forked, such a cancel ends that process by SIGTERM instead. Outside a
    supervised child, or once the pipe is broken, the message goes to the
    ``worker`` logger.
    """
    RUNTIME.log(message, progress, message_type, options)


def set_task_info(task_id: str, total_steps: int | None) -> None:
    """Set the task id and the number of steps, and restart the step count.

    In a supervised child the task id stays the one the supervisor assigned.
    Raises TypeError or ValueError for a task id that is not a str or a step
    count that is not an int of 0 or more (None means no step count).
    """
    RUNTIME.set_task_info(task_id, total_steps)


def increment_progress() -> int | None:
    """Count one step done; return the new percentage, or None without a count."""
    return RUNTIME.steps.increment()


def get_progress() -> int | None:
    """Return the step counter's percentage, or None without a step count."""
    return RUNTIME.steps.percentage()
