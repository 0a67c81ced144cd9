"""Fixtures for the supervisor tests: supervisors that always shut down, sinks."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from supervisor import Supervisor


class Collector:
    """A sink that keeps every message it receives, thread-safe."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._condition = threading.Condition()

    def __call__(self, message: dict[str, Any]) -> None:
        with self._condition:
            self.messages.append(message)
            self._condition.notify_all()

    def of(self, task_id: str) -> list[dict[str, Any]]:
        with self._condition:
            return [m for m in self.messages if m["task_id"] == task_id]

    def texts(self, task_id: str) -> list[str]:
        return [m["message"] for m in self.of(task_id) if m["event"] == "log"]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("condition not met within the timeout")
                self._condition.wait(left)


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def task_id() -> Callable[[str], str]:
    """Return a function making task ids unique to this test run."""
    run = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{run}"


@pytest.fixture
def make_supervisor() -> Iterator[Callable[..., Supervisor]]:
    """Create supervisors that are shut down (children killed) after the test."""
    created: list[Supervisor] = []

    def make(*args: Any, **kwargs: Any) -> Supervisor:
        kwargs.setdefault("grace_period", 1.0)
        supervisor = Supervisor(*args, **kwargs)
        created.append(supervisor)
        return supervisor

    yield make
    for supervisor in created:
        supervisor.shutdown()


@pytest.fixture
def no_zombies() -> Iterator[None]:
    """Fail if this process has zombie children after the test."""
    yield
    deadline = time.monotonic() + 5
    while True:
        zombies = [
            child
            for child in psutil.Process().children(recursive=True)
            if _is_zombie(child)
        ]
        if not zombies or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert zombies == []


def _is_zombie(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def process_gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (a zombie waiting for init counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
