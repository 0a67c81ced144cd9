from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from worker import Limits, _runtime
from worker._cancel import CancelGuard
from worker._channel import Channel


@pytest.fixture(autouse=True)
def unsupervised() -> Iterator[None]:
    """Start and end every test as a process without supervisor."""
    _runtime.reset()
    yield
    _runtime.reset()


class PipeEnd:
    """The read end of a pipe whose write end is the installed channel."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)

    def read(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def frames(self) -> list[dict[str, Any]]:
        data = self.read()
        assert data == b"" or data.endswith(b"\n")
        return [orjson.loads(line) for line in data.splitlines()]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@pytest.fixture
def supervised() -> Iterator[PipeEnd]:
    """Install a channel on a real pipe, as the child entry point does."""
    read_fd, write_fd = os.pipe()
    _runtime.RUNTIME.install(Channel(write_fd, CancelGuard()), "task-1", None, Limits())
    reader = PipeEnd(read_fd)
    yield reader
    channel = _runtime.RUNTIME.channel
    assert channel is not None
    channel.close()
    reader.close()
