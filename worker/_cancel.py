"""The cancel exception, and the SIGTERM handler that raises it at a safe point."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class Cancelled(BaseException):
    """Raised in the job's main thread when the supervisor cancels the task.

    The supervisor cancels by sending SIGTERM to the child's process group. This
    derives from ``BaseException`` so that a job's ``except Exception`` does not
    swallow it; a job may catch it to clean up, and should re-raise it.
    """


class CancelGuard:
    """SIGTERM handler that raises `Cancelled`, deferred while a frame is written.

    A frame cut in half by an exception would corrupt the stream, so a SIGTERM
    that interrupts the main thread between `begin_write` and `end_write` only
    records the request, and `raise_if_deferred` raises it once the frame is
    complete. Python runs signal handlers in the main thread only, so other
    threads never see `Cancelled`.
    """

    def __init__(self) -> None:
        self._writer: int | None = None
        self._deferred = False
        self._armed = False
        self._main_thread = threading.main_thread().ident

    def install(self) -> None:
        """Make SIGTERM raise `Cancelled` in the main thread."""
        self._armed = True
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def ignore(self) -> None:
        """Ignore SIGTERM from now on and drop a cancel that is still deferred."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self._armed = False
        self._deferred = False

    def begin_write(self) -> None:
        """Mark the calling thread as writing a frame (the caller holds the lock)."""
        self._writer = threading.get_ident()

    def end_write(self) -> None:
        """Mark the frame as complete."""
        self._writer = None

    def raise_if_deferred(self) -> None:
        """Raise the cancel that arrived while the main thread was writing."""
        if self._deferred and threading.get_ident() == self._main_thread:
            self._deferred = False
            if self._armed:
                raise Cancelled("the task was cancelled (SIGTERM)")

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self._writer == threading.get_ident():
            self._deferred = True
            return
        self._deferred = False
        raise Cancelled("the task was cancelled (SIGTERM)")
