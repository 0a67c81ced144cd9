"""The cancel exception and the SIGTERM handler that defers it during a write."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import orjson
import pytest

from tests.worker.childproc import ChildProcess
from worker import Cancelled, Limits
from worker._cancel import CancelGuard

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def guard() -> Iterator[CancelGuard]:
    previous = signal.getsignal(signal.SIGTERM)
    guard = CancelGuard()
    guard.install()
    yield guard
    signal.signal(signal.SIGTERM, previous)


def test_cancelled_is_not_an_exception() -> None:
    assert issubclass(Cancelled, BaseException)
    assert not issubclass(Cancelled, Exception)


def test_sigterm_raises_cancelled(guard: CancelGuard) -> None:
    with pytest.raises(Cancelled, match="cancelled"):
        signal.raise_signal(signal.SIGTERM)


def test_sigterm_during_write_is_deferred(guard: CancelGuard) -> None:
    guard.begin_write()
    signal.raise_signal(signal.SIGTERM)  # runs the handler before returning
    guard.end_write()

    with pytest.raises(Cancelled):
        guard.raise_if_deferred()
    guard.raise_if_deferred()


def test_ignore_drops_deferred_cancel(guard: CancelGuard) -> None:
    guard.begin_write()
    signal.raise_signal(signal.SIGTERM)  # runs the handler before returning
    guard.end_write()
    guard.ignore()

    guard.raise_if_deferred()
    signal.raise_signal(signal.SIGTERM)  # runs the handler before returning


@pytest.mark.parametrize("frames_before_cancel", [1, 4, 9])
def test_sigterm_during_large_writes_keeps_stream_whole(
    frames_before_cancel: int,
) -> None:
    """A cancel that interrupts a 1 MB frame still leaves whole frames only."""
    limits = Limits(max_message_chars=2_000_000)
    with ChildProcess(
        "tests.worker.jobs:write_big_messages", 1_000_000, 200, limits=limits
    ) as child:
        child.data.wait_for(lambda data: data.count(b"\n") >= frames_before_cancel, 30)
        os.killpg(child.pid, signal.SIGTERM)
        exit_code = child.wait()
        data = child.data.data

    assert exit_code == -signal.SIGTERM
    assert data.endswith(b"\n")
    frames = [orjson.loads(line) for line in data.splitlines()]
    assert frames[-1] == {"k": "cancelled"}
    logs = frames[:-1]
    assert len(logs) >= frames_before_cancel
    assert all(len(frame["message"]) == 1_000_000 for frame in logs)
    assert [frame["options"]["number"] for frame in logs] == list(range(len(logs)))
