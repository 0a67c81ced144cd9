"""The cancel exception, and the SIGTERM handler that raises it at a safe point."""

from __future__ import annotations

import os
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

    In a process that the job forked, SIGTERM takes its default action again
    and ends the process, but a frame write blocks it until the frame is
    complete. A multiprocessing pool stops its workers with SIGTERM, and
    `Cancelled` there would only print a traceback from each of them. The
    default action also ends a worker that waits in a C call, which a Python
    handler only interrupts when the signal arrives during that call.
    """

    def __init__(self) -> None:
        self._writer: int | None = None
        self._deferred = False
        self._armed = False
        self._pid = os.getpid()
        self._main_thread = threading.main_thread().ident
        #: Signal masks to restore after a fork and after a frame write.
        self._mask_before_fork: set[int | signal.Signals] | None = None
        self._mask_before_write: set[int | signal.Signals] | None = None
        self._blocks_during_write = False

    def install(self) -> None:
        """Make SIGTERM raise `Cancelled` in the main thread."""
        self._armed = True
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def ignore(self) -> None:
        """Ignore SIGTERM from now on and drop a cancel that is still deferred."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self._armed = False
        self._deferred = False

    def before_fork(self) -> None:
        """Block SIGTERM in the forking thread until `after_fork_in_*` runs.

        CPython drops a signal that its handler caught in a new process before
        the fork hooks ran, so a blocked SIGTERM is what keeps a cancel that
        arrives during the fork.
        """
        self._mask_before_fork = signal.pthread_sigmask(
            signal.SIG_BLOCK, {signal.SIGTERM}
        )

    def after_fork_in_parent(self) -> None:
        """Unblock SIGTERM; a cancel that arrived meanwhile is deferred."""
        # NOTE: a SIGTERM that arrived during the fork runs the handler inside
        # this hook, where an exception would be printed and dropped. So the
        # cancel is deferred to the next frame the main thread writes, and the
        # supervisor's SIGKILL after its grace period ends a job that writes none.
        self._writer = threading.get_ident()
        try:
            self._restore_fork_mask()
        finally:
            self._writer = None

    def after_fork_in_child(self) -> None:
        """Forget the parent's writes, restore SIGTERM's default action, unblock it.

        A SIGTERM that the job ignores stays ignored.
        """
        self._writer = None
        self._deferred = False
        # The thread that forked is the only one left, and Python now runs
        # signal handlers in it.
        self._main_thread = threading.get_ident()
        if self._armed:
            self._armed = False
            self._blocks_during_write = True
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self._restore_fork_mask()

    def begin_write(self) -> None:
        """Mark the calling thread as writing a frame (the caller holds the lock)."""
        self._writer = threading.get_ident()
        if self._blocks_during_write:
            self._mask_before_write = signal.pthread_sigmask(
                signal.SIG_BLOCK, {signal.SIGTERM}
            )

    def end_write(self) -> None:
        """Mark the frame as complete; a SIGTERM blocked meanwhile acts now."""
        self._writer = None
        mask, self._mask_before_write = self._mask_before_write, None
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def raise_if_deferred(self) -> None:
        """Raise the cancel that arrived while the main thread was writing."""
        if self._deferred and threading.get_ident() == self._main_thread:
            self._deferred = False
            if self._armed:
                self._cancel()

    def _restore_fork_mask(self) -> None:
        mask, self._mask_before_fork = self._mask_before_fork, None
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self._writer == threading.get_ident():
            self._deferred = True
            return
        self._deferred = False
        self._cancel()

    def _cancel(self) -> None:
        # A fork that skipped the fork hooks leaves this handler in place.
        if os.getpid() != self._pid:
            _terminate()
        raise Cancelled("the task was cancelled (SIGTERM)")


def _terminate() -> None:
    """End this process by SIGTERM, as if no handler were installed."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
    # Not reached unless the job blocked SIGTERM in this thread.
    os._exit(128 + signal.SIGTERM)
