"""The write end of the frame pipe, shared by every thread of the job."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
import weakref

from worker._cancel import CancelGuard


class Channel:
    """Writes whole frames to a pipe, one thread at a time.

    Each frame is written synchronously with ``os.write``, so a frame whose
    `send` returned is in the pipe even if the process dies right after. When
    the reader is slower than the job, the pipe fills and `send` blocks until
    there is room. A SIGTERM that arrives during a write is deferred by the
    `CancelGuard` until the frame is complete.

    Once the process forks (``os.fork``, or multiprocessing with the fork
    start method), the parent and its children write to the same pipe, where a
    write of more than PIPE_BUF bytes from one process can interleave with
    another's. From then on every process also holds a POSIX record lock on a
    private lock file while it writes a frame. Record locks belong to a
    process, so they exclude each other across fork, unlike ``flock`` on an
    inherited descriptor. A process that never forks skips that lock.
    """

    def __init__(self, fd: int, guard: CancelGuard) -> None:
        self._fd: int | None = fd
        self._guard = guard
        self._lock = threading.Lock()
        self._lock_fd = _open_lock_file()
        self._shared = False
        self._held_for_fork = False
        #: Why the channel stopped: the write error, or None after `close`.
        self.failure: OSError | None = None
        _ForkHooks(self)

    @property
    def closed(self) -> bool:
        """Whether frames can no longer be written."""
        return self._fd is None

    @property
    def shared(self) -> bool:
        """Whether a fork made other processes write to the same pipe."""
        return self._shared

    def send(self, frame: bytes) -> bool:
        """Write one frame; return False if the channel is closed or broken."""
        try:
            with self._lock:
                fd = self._fd
                if fd is None:
                    return False
                self._guard.begin_write()
                try:
                    if self._shared:
                        self._write_between_processes(fd, frame)
                    else:
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

    def _write_between_processes(self, fd: int, frame: bytes) -> None:
        lock_fd = self._lock_fd
        if lock_fd is None:
            _write_all(fd, frame)
            return
        # NOTE: a forked process killed in the middle of a frame (SIGKILL, or
        # os._exit from another thread) leaves half a line in the pipe. The
        # supervisor drops that invalid line with a warning, and with it the
        # frame that another process writes right after it.
        fcntl.lockf(lock_fd, fcntl.LOCK_EX)
        try:
            _write_all(fd, frame)
        finally:
            fcntl.lockf(lock_fd, fcntl.LOCK_UN)

    def _close_locked(self, failure: OSError | None) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self.failure = failure
        lock_fd, self._lock_fd = self._lock_fd, None
        # The descriptors are released even when close reports an error.
        for descriptor in (fd, lock_fd):
            if descriptor is not None:
                with contextlib.suppress(OSError):
                    os.close(descriptor)

    def _before_fork(self) -> None:
        self._guard.before_fork()
        # A frame in progress is finished before the fork, because it was
        # started without the record lock that the other process will take.
        self._lock.acquire()
        self._held_for_fork = True

    def _after_fork_in_parent(self) -> None:
        self._shared = True
        # Still under the lock, because the guard marks this thread as the
        # writer while it unblocks SIGTERM.
        try:
            self._guard.after_fork_in_parent()
        finally:
            self._release_after_fork()

    def _after_fork_in_child(self) -> None:
        self._shared = True
        # Only the forking thread survives, and it holds the lock. A fresh
        # lock also covers a fork whose `before` hook could not take it.
        self._held_for_fork = False
        self._lock = threading.Lock()
        self._guard.after_fork_in_child()

    def _release_after_fork(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self._lock.release()


def _open_lock_file() -> int | None:
    """Create an unlinked temporary file to hold the record lock on."""
    try:
        fd, path = tempfile.mkstemp(prefix="worker-channel-", suffix=".lock")
    except OSError:
        # NOTE: without a lock file, processes forked by the job write frames
        # unlocked, and frames over PIPE_BUF bytes can interleave.
        return None
    with contextlib.suppress(OSError):
        os.unlink(path)
    return fd


class _ForkHooks:
    """Calls a channel's fork hooks without keeping the channel alive.

    The channel found before the fork is kept until after it, so the hooks
    after the fork always undo what the hook before it did.
    """

    def __init__(self, channel: Channel) -> None:
        self._channel = weakref.ref(channel)
        self._forking: Channel | None = None
        os.register_at_fork(
            before=self.before,
            after_in_parent=self.after_in_parent,
            after_in_child=self.after_in_child,
        )

    def before(self) -> None:
        self._forking = self._channel()
        if self._forking is not None:
            self._forking._before_fork()

    def after_in_parent(self) -> None:
        channel, self._forking = self._forking, None
        if channel is not None:
            channel._after_fork_in_parent()

    def after_in_child(self) -> None:
        channel, self._forking = self._forking, None
        if channel is not None:
            channel._after_fork_in_child()


def _write_all(fd: int, frame: bytes) -> None:
    written = os.write(fd, frame)
    if written == len(frame):
        return
    # A pipe takes a large write in parts when a signal interrupts it.
    view = memoryview(frame)[written:]
    while view:
        written = os.write(fd, view)
        view = view[written:]
