"""The write end of the frame pipe, shared by every thread of the job."""

from __future__ import annotations

import contextlib
import os
import threading

from worker._cancel import CancelGuard


class Channel:
    """Writes whole frames to a pipe, one thread at a time.

    Each frame is written synchronously with ``os.write``, so a frame whose
    `send` returned is in the pipe even if the process dies right after. When
    the reader is slower than the job, the pipe fills and `send` blocks until
    there is room. A SIGTERM that arrives during a write is deferred by the
    `CancelGuard` until the frame is complete.
    """

    def __init__(self, fd: int, guard: CancelGuard) -> None:
        self._fd: int | None = fd
        self._guard = guard
        self._lock = threading.Lock()
        #: Why the channel stopped: the write error, or None after `close`.
        self.failure: OSError | None = None

    @property
    def closed(self) -> bool:
        """Whether frames can no longer be written."""
        return self._fd is None

    def send(self, frame: bytes) -> bool:
        """Write one frame; return False if the channel is closed or broken."""
        try:
            with self._lock:
                fd = self._fd
                if fd is None:
                    return False
                self._guard.begin_write()
                try:
                    _write_all(fd, frame)
                except OSError as exc:
                    self._close_locked(exc)
                    return False
                finally:
                    self._guard.end_write()
            return True
        finally:
            self._guard.raise_if_deferred()

    def close(self) -> None:
        """Close the pipe; later `send` calls return False. Safe to call twice."""
        with self._lock:
            self._close_locked(None)

    def _close_locked(self, failure: OSError | None) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self.failure = failure
        # The descriptor is released even when close reports an error.
        with contextlib.suppress(OSError):
            os.close(fd)


def _write_all(fd: int, frame: bytes) -> None:
    written = os.write(fd, frame)
    if written == len(frame):
        return
    # A pipe takes a large write in parts when a signal interrupts it.
    view = memoryview(frame)[written:]
    while view:
        written = os.write(fd, view)
        view = view[written:]
