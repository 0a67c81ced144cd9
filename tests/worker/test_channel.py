"""Writing whole frames into a real pipe."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import orjson
import pytest

from worker._cancel import CancelGuard
from worker._channel import Channel

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pipe() -> Iterator[tuple[int, Channel]]:
    read_fd, write_fd = os.pipe()
    channel = Channel(write_fd, CancelGuard())
    yield read_fd, channel
    channel.close()
    os.close(read_fd)


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def test_frames_arrive_in_order(pipe: tuple[int, Channel]) -> None:
    read_fd, channel = pipe

    assert channel.send(b'{"n":1}\n')
    assert channel.send(b'{"n":2}\n')
    channel.close()

    assert read_all(read_fd) == b'{"n":1}\n{"n":2}\n'


def test_frame_larger_than_pipe_arrives_whole(pipe: tuple[int, Channel]) -> None:
    read_fd, channel = pipe
    frame = orjson.dumps({"message": "x" * 1_000_000}) + b"\n"
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(read_all(read_fd)))
    reader.start()

    assert channel.send(frame)
    channel.close()
    reader.join(10)

    assert received == [frame]


def test_concurrent_threads_write_whole_frames(pipe: tuple[int, Channel]) -> None:
    read_fd, channel = pipe
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(read_all(read_fd)))
    reader.start()

    def write(thread: int) -> None:
        for number in range(50):
            frame = {"thread": thread, "number": number, "pad": "p" * 20_000}
            channel.send(orjson.dumps(frame) + b"\n")

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(20)
    channel.close()
    reader.join(10)

    frames = [orjson.loads(line) for line in received[0].splitlines()]
    assert len(frames) == 200
    for thread in range(4):
        numbers = [f["number"] for f in frames if f["thread"] == thread]
        assert numbers == list(range(50))


def test_send_after_reader_closed_returns_false() -> None:
    read_fd, write_fd = os.pipe()
    channel = Channel(write_fd, CancelGuard())
    os.close(read_fd)

    assert not channel.send(b"{}\n")
    assert channel.closed
    assert isinstance(channel.failure, BrokenPipeError)
    assert not channel.send(b"{}\n")


def test_send_after_close_returns_false(pipe: tuple[int, Channel]) -> None:
    _, channel = pipe
    channel.close()
    channel.close()

    assert not channel.send(b"{}\n")
    assert channel.failure is None
