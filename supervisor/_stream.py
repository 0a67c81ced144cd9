"""Building one task's stream of messages: seq, timestamps, options, progress."""

from __future__ import annotations

import datetime
import functools
import math
from typing import Any

from worker._truncate import cut_text

from ._progress import ProgressTracker, describe_invalid
from ._status import ErrorInfo, TaskState

__all__ = [
    "MESSAGE_TYPES",
    "OPTION_PREFIX",
    "STANDARD_FIELDS",
    "Message",
    "MessageStream",
]

#: One message as every sink receives it: JSON-safe values, string keys.
Message = dict[str, Any]

MESSAGE_TYPES = frozenset({"info", "warning", "error"})
STANDARD_FIELDS = frozenset(
    {
        "task_id",
        "seq",
        "event",
        "message",
        "message_type",
        "progress",
        "timestamp",
        "state",
        "exit_code",
        "signal",
        "error",
    }
)
#: A job's option whose key is a standard field is kept under this prefix, so
#: ``"message"`` becomes ``"option_message"``. If that key is taken as well,
#: the option is dropped.
OPTION_PREFIX = "option_"

_FINISHED_TYPES = {
    TaskState.SUCCEEDED: "info",
    TaskState.CANCELLED: "info",
    TaskState.TIMED_OUT: "warning",
    TaskState.FAILED: "error",
    TaskState.CRASHED: "error",
}


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@functools.lru_cache(maxsize=4)
def _second_text(second: int) -> str:
    return datetime.datetime.fromtimestamp(second, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S"
    )


def _timestamp(ts: object) -> str:
    """Format a child's ``time.time()`` as ISO 8601 UTC with microseconds.

    Formatting a datetime per message costs more than the rest of a message's
    handling, so the text of the current second is cached.
    """
    if isinstance(ts, bool) or not isinstance(ts, float | int) or not math.isfinite(ts):
        return utc_now().isoformat(timespec="microseconds")
    second = math.floor(ts)
    try:
        prefix = _second_text(second)
    except (OverflowError, OSError, ValueError):
        return utc_now().isoformat(timespec="microseconds")
    micro = min(int((ts - second) * 1_000_000), 999_999)
    return f"{prefix}.{micro:06d}+00:00"


class MessageStream:
    """Number and build the messages of one task, in the order they are sent.

    Not thread-safe: one thread at a time builds a task's messages.
    """

    def __init__(self, task_id: str, max_message_chars: int) -> None:
        self.task_id = task_id
        self.max_message_chars = max_message_chars
        #: seq of the last message built, so also the count of messages.
        self.seq = 0
        self.progress = ProgressTracker()

    def started(self, pid: int | None, target: str) -> Message:
        """Build the ``started`` message, seq 1 of every task that runs."""
        message = self._build("started", f"Task started: {target}", "info", None)
        message["pid"] = pid
        return message

    def finished(
        self,
        state: TaskState,
        exit_code: int | None,
        signal: str | None,
        error: ErrorInfo | None,
        summary: str,
    ) -> Message:
        """Build the ``finished`` message, the last of the stream."""
        progress = self.progress.final(state is TaskState.SUCCEEDED)
        message = self._build("finished", summary, _FINISHED_TYPES[state], progress)
        message["state"] = state.value
        message["exit_code"] = exit_code
        message["signal"] = signal
        message["error"] = None if error is None else error.to_dict()
        return message

    def warning(self, text: str) -> Message:
        """Build a warning of the supervisor's own, marked ``source: supervisor``."""
        message = self._build("log", text, "warning", None)
        message["source"] = "supervisor"
        return message

    def output_line(self, stream_name: str, text: str) -> Message:
        """Build the message for one line the child wrote to stdout or stderr."""
        message_type = "info" if stream_name == "stdout" else "warning"
        message = self._build("log", self._cap(text), message_type, None)
        message["stream"] = stream_name
        return message

    def log_frame(self, frame: dict[str, Any]) -> list[Message]:
        """Build the message for a ``log`` frame, followed by any warnings."""
        warnings: list[str] = []
        message_type = frame.get("message_type", "info")
        if not isinstance(message_type, str) or message_type not in MESSAGE_TYPES:
            warnings.append(
                f"unknown message type {message_type!r} was sent as 'info'; use "
                "'info', 'warning' or 'error'"
            )
            message_type = "info"

        progress: int | None
        progress_warning: str | None
        invalid = frame.get("progress_invalid")
        if invalid is not None:
            progress, progress_warning = None, describe_invalid(str(invalid))
        else:
            progress, progress_warning = self.progress.apply(frame.get("progress"))
        if progress_warning is not None:
            warnings.append(progress_warning)

        text = frame.get("message", "")
        message = self._build(
            "log",
            self._cap(text if isinstance(text, str) else str(text)),
            message_type,
            progress,
            frame.get("ts"),
        )
        self._merge_options(message, frame.get("options"))
        if not warnings:
            return [message]
        return [message, *(self.warning(text) for text in warnings)]

    def _cap(self, text: str) -> str:
        # The worker already cut its messages by the same rule, so this only
        # changes output lines and frames from a child that bypassed it.
        return cut_text(text, self.max_message_chars)

    def _merge_options(self, message: Message, options: object) -> None:
        if not options:
            return
        if not isinstance(options, dict):
            options = {"options": options}
        for key, value in options.items():
            name = key if isinstance(key, str) else str(key)
            if name in STANDARD_FIELDS:
                name = OPTION_PREFIX + name
            if name not in message:
                message[name] = value

    def _build(
        self,
        event: str,
        text: str,
        message_type: str,
        progress: int | None,
        ts: object = None,
    ) -> Message:
        self.seq += 1
        return {
            "task_id": self.task_id,
            "seq": self.seq,
            "event": event,
            "message": text,
            "message_type": message_type,
            "progress": progress,
            "timestamp": _timestamp(ts),
        }
