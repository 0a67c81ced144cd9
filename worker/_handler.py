"""A logging handler that sends each record to the supervisor."""

from __future__ import annotations

import logging
import threading
import traceback

from worker._jsonsafe import safe_repr, text_of
from worker._runtime import RUNTIME


class WebSocketLogHandler(logging.Handler):
    """Sends each record as a log message, like `logging_helper`.

    ERROR and above become ``error`` messages, WARNING ``warning`` and the rest
    ``info``; the step counter gives the progress. A record whose message
    cannot be formatted (``logger.info("%s and %s", "one")``) is sent as its
    raw text with the arguments shown. Outside a supervised child the handler
    sends nothing, since the record already went through logging.
    """

    def __init__(self, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        """Send the record; never raises except RecursionError and `Cancelled`."""
        if getattr(self._local, "emitting", False):
            return
        self._local.emitting = True
        try:
            message = self._render(record)
            RUNTIME.send_log(message, None, _message_type(record.levelno), None)
        except RecursionError:
            raise
        except Exception as exc:
            RUNTIME.notices.once(
                f"handler-{type(exc).__name__}",
                f"worker: task {RUNTIME.task_id}: WebSocketLogHandler could not "
                f"send a record ({safe_repr(exc)})",
            )
        finally:
            self._local.emitting = False

    def _render(self, record: logging.LogRecord) -> str:
        try:
            return self.format(record)
        except RecursionError:
            raise
        except Exception as exc:
            RUNTIME.notices.once(
                f"format-{type(exc).__name__}",
                f"worker: task {RUNTIME.task_id}: a log record could not be "
                f"formatted ({safe_repr(exc)}); it is sent with its arguments shown",
            )
            return _raw_text(record)


def _message_type(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    return "info"


def _raw_text(record: logging.LogRecord) -> str:
    text = f"{text_of(record.msg)} [arguments: {safe_repr(record.args)}]"
    if record.exc_info and record.exc_info[1] is not None:
        text += "\n" + "".join(traceback.format_exception(record.exc_info[1]))
    elif record.exc_text:
        text += "\n" + record.exc_text
    return text.rstrip("\n")
