"""The process-wide state behind the public functions, in one private object."""

from __future__ import annotations

import logging
import threading
from typing import Any

from worker._channel import Channel
from worker._frames import encode_log
from worker._jsonsafe import safe_repr, text_of
from worker._progress import Progress, coerce_progress
from worker._spec import Limits
from worker._stderr import StderrNotices
from worker._steps import StepCounter

#: The logger that job messages go to when no supervisor receives them.
JOB_LOGGER = logging.getLogger("worker")

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class Runtime:
    """Task id, step counter and channel of this process.

    Without a channel (a plain script, a unit test, or a channel that failed)
    messages go to the ``worker`` logger instead.
    """

    def __init__(self) -> None:
        self.task_id: str | None = None
        self.limits = Limits()
        self.steps = StepCounter()
        self.channel: Channel | None = None
        self.notices = StderrNotices()
        self._local = threading.local()

    def install(
        self, channel: Channel, task_id: str, total_steps: int | None, limits: Limits
    ) -> None:
        """Send messages through ``channel`` from now on."""
        self.task_id = task_id
        self.limits = limits
        self.steps.reset(total_steps)
        self.channel = channel

    def set_task_info(self, task_id: str, total_steps: int | None) -> None:
        """Validate and store the task id and the step count; restart counting."""
        if not isinstance(task_id, str):
            raise TypeError(f"task_id must be a str, not {task_id!r}")
        if total_steps is not None and (
            not isinstance(total_steps, int) or isinstance(total_steps, bool)
        ):
            raise TypeError(f"total_steps must be an int or None, not {total_steps!r}")
        if total_steps is not None and total_steps < 0:
            raise ValueError(f"total_steps must be 0 or more, not {total_steps!r}")
        # A supervised child keeps the supervisor's task id, under which the
        # supervisor files every message anyway.
        if self.channel is None:
            self.task_id = task_id
        self.steps.reset(total_steps)

    def log(
        self, message: object, progress: object, message_type: object, options: object
    ) -> None:
        """Send a log message, or log it locally when it cannot be sent."""
        if not self.send_log(message, progress, message_type, options):
            self._log_locally(message, progress, message_type, options)

    def send_log(
        self, message: object, progress: object, message_type: object, options: object
    ) -> bool:
        """Write a log frame; return False if there is no working channel."""
        channel = self.channel
        if channel is None:
            return False
        try:
            frame = self._encode_log(message, progress, message_type, options)
        except Exception as exc:
            self.notices.once(
                "encode",
                f"worker: task {self.task_id}: could not encode a log message "
                f"({safe_repr(exc)}); it went to the 'worker' logger instead",
            )
            return False
        if channel.send(frame):
            return True
        self._notice_channel_failure(channel)
        return False

    def reset(self) -> None:
        """Forget the task, the step count, the channel and the notices."""
        self.task_id = None
        self.limits = Limits()
        self.steps.reset(None)
        self.channel = None
        self.notices.reset()

    def _encode_log(
        self, message: object, progress: object, message_type: object, options: object
    ) -> bytes:
        value: Progress
        if progress is None:
            value, invalid = self.steps.percentage(), None
        else:
            value, invalid = coerce_progress(progress)
        return encode_log(
            text_of(message),
            value,
            invalid,
            text_of(message_type),
            options,
            self.limits,
        )

    def _notice_channel_failure(self, channel: Channel) -> None:
        failure = channel.failure
        kind = "closed" if failure is None else type(failure).__name__
        reason = "it was closed" if failure is None else safe_repr(failure)
        self.notices.once(
            f"channel-{kind}",
            f"worker: task {self.task_id}: cannot send log messages ({reason}); "
            "they go to the 'worker' logger instead",
        )

    def _log_locally(
        self, message: object, progress: object, message_type: object, options: object
    ) -> None:
        # A handler of ours on the root logger sends records back here; the flag
        # stops that loop after one round.
        if getattr(self._local, "logging", False):
            return
        self._local.logging = True
        try:
            self._write_log_record(text_of(message), progress, message_type, options)
        except Exception as exc:
            self.notices.once(
                "logging",
                f"worker: task {self.task_id}: the logging module failed "
                f"({safe_repr(exc)})",
            )
        finally:
            self._local.logging = False

    def _write_log_record(
        self, text: str, progress: object, message_type: object, options: object
    ) -> None:
        level = _LEVELS.get(text_of(message_type), logging.INFO)
        if progress is None:
            progress = self.steps.percentage()
        extra: dict[str, Any] = {
            "task_id": self.task_id,
            "progress": progress,
            "options": options,
        }
        if self.task_id is None:
            JOB_LOGGER.log(level, "%s", text, extra=extra)
        else:
            JOB_LOGGER.log(level, "task %s: %s", self.task_id, text, extra=extra)


RUNTIME = Runtime()


def reset() -> None:
    """Restore the state of a process without supervisor, for tests."""
    RUNTIME.reset()
