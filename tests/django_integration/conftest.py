"""Fixtures for the Django app's tests: the process runtime and waiting helpers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from django_integration.runtime import Runtime, get_runtime

#: Seconds a test waits for a condition the supervisor brings about.
WAIT_TIMEOUT = 30.0


def wait_for(
    condition: Callable[[], Any], timeout: float = WAIT_TIMEOUT, interval: float = 0.02
) -> Any:
    """Return the first true value of ``condition()``, failing after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition {condition!r} still false after {timeout} s")
        time.sleep(interval)


@pytest.fixture
def runtime(transactional_db: None) -> Iterator[Runtime]:
    """This process's runtime, shut down and cleared before the database is flushed."""
    current = get_runtime()
    current.reset()
    yield current
    current.reset()


@pytest.fixture
def unique_id(request: pytest.FixtureRequest) -> str:
    """A task id unique to this test and run, so parallel runs never collide."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name)[:40]
    return f"{name}-{time.monotonic_ns() % 10**9}"
