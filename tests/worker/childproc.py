"""Run `worker._child.main` in a real child process, without the supervisor.

`ChildProcess` creates the four pipes of a `ChildSpec`, starts the child with
the forkserver start method, reads the data, stdout and stderr pipes in
threads, and always kills the child's process group and reaps it on exit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

import orjson

import worker._child
from worker import ChildSpec, Limits

START_METHOD = "forkserver"


class PipeReader(threading.Thread):
    """Reads a pipe until end of file into a buffer that tests can wait on."""

    def __init__(self, fd: int, name: str) -> None:
        super().__init__(name=f"read-{name}", daemon=True)
        self.fd = fd
        self._data = bytearray()
        self._changed = threading.Condition()

        self._closing = threading.Event()

    def run(self) -> None:
        try:
            while not self._closing.is_set():
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    break
                with self._changed:
                    self._data += chunk
                    self._changed.notify_all()
        finally:
            os.close(self.fd)

    def close_now(self) -> None:
        """Stop reading after the next chunk and close the pipe."""
        self._closing.set()

    @property
    def data(self) -> bytes:
        with self._changed:
            return bytes(self._data)

    def wait_for(self, predicate: Callable[[bytes], bool], timeout: float) -> bytes:
        """Wait until ``predicate(data)`` holds; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(bytes(self._data)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"pipe {self.name} has {self._data[-300:]!r}")
                self._changed.wait(remaining)
            return bytes(self._data)


class ChildProcess:
    """A child running ``target`` through the worker entry point."""

    def __init__(
        self,
        target: str,
        *args: Any,
        total_steps: int | None = None,
        limits: Limits | None = None,
        task_id: str = "test-task",
        start_method: str = START_METHOD,
    ) -> None:
        self._target = target
        self._args = args
        self._total_steps = total_steps
        self._limits = limits or Limits()
        self._task_id = task_id
        self._start_method = start_method
        self.alive_fd: int | None = None

    def __enter__(self) -> ChildProcess:
        context = multiprocessing.get_context(self._start_method)
        data, stdout, stderr, alive = (os.pipe() for _ in range(4))
        spec = ChildSpec(
            task_id=self._task_id,
            target=self._target,
            args=self._args,
            kwargs={},
            total_steps=self._total_steps,
            data=Connection(data[1], readable=False),
            stdout=Connection(stdout[1], readable=False),
            stderr=Connection(stderr[1], readable=False),
            alive=Connection(alive[0], writable=False),
            limits=self._limits,
        )
        child_ends = [spec.data, spec.stdout, spec.stderr, spec.alive]
        self.alive_fd = alive[1]
        self.process = context.Process(target=worker._child.main, args=(spec,))
        try:
            self.process.start()
        finally:
            for end in child_ends:
                end.close()
        self.data = PipeReader(data[0], "data")
        self.stdout = PipeReader(stdout[0], "stdout")
        self.stderr = PipeReader(stderr[0], "stderr")
        for reader in (self.data, self.stdout, self.stderr):
            reader.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process.is_alive():
            self.kill()
        self.process.join(10)
        self.close_alive()
        for reader in (self.data, self.stdout, self.stderr):
            reader.join(10)

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the child's process group, or the child before it made one."""
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)

    def close_data(self) -> None:
        """Close the read end of the data pipe, as a dying supervisor would."""
        self.data.close_now()

    def close_alive(self) -> None:
        """Close the write end of the alive pipe, as a dying web process would."""
        if self.alive_fd is not None:
            os.close(self.alive_fd)
            self.alive_fd = None

    def wait(self, timeout: float = 30) -> int:
        """Wait for the child and its pipes to end; return its exit code."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise TimeoutError(f"child {self.pid} still runs after {timeout} s")
        for reader in (self.data, self.stdout, self.stderr):
            reader.join(timeout)
        return int(self.process.exitcode)

    def wait_for_frame(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        """Wait for the first frame of ``kind`` and return it."""

        def has_frame(data: bytes) -> bool:
            return any(frame["k"] == kind for frame in parse_frames(data))

        self.data.wait_for(has_frame, timeout)
        return next(f for f in parse_frames(self.data.data) if f["k"] == kind)

    @property
    def frames(self) -> list[dict[str, Any]]:
        return parse_frames(self.data.data)


def parse_frames(data: bytes) -> list[dict[str, Any]]:
    """Parse every complete line of ``data`` as a JSON frame."""
    lines = data.split(b"\n")[:-1]
    return [orjson.loads(line) for line in lines]
