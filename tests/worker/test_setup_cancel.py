"""A cancel that arrives while the child is still setting up.

These tests start the child with the fork start method, so the child writes
to this process's stderr until it redirects its output. A forkserver child
would inherit the fork server's stderr, which capfd does not capture.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import types
from collections.abc import Callable
from typing import Any

import pytest

import worker._child
from tests.worker.childproc import ChildProcess

pytestmark = pytest.mark.timeout(60)

JOB = "tests.worker.edge_jobs:sleep_for"
ATTEMPTS = 20


def test_cancel_at_once_ends_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    """SIGTERM right after start ends the child cancelled, printing nothing.

    Each attempt waits a little longer, to reach later steps of the setup.
    """
    outcomes = []
    for attempt in range(ATTEMPTS):
        with ChildProcess(JOB, 30, start_method="fork") as child:
            time.sleep(attempt * 0.0004)
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
            outcomes.append((child.wait(timeout=20), child.frames))

    for exit_code, frames in outcomes:
        assert exit_code == -signal.SIGTERM
        assert frames in ([], [{"k": "cancelled"}])
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def sigterm_before(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``function`` so that the process gets SIGTERM just before it runs."""

    def call(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        return function(*args, **kwargs)

    return call


SETUP_STEPS = [
    "_start_watchdog",
    "_redirect_output",
    "faulthandler",
    "_take_fd",
    "Channel",
    "RUNTIME.install",
]


@pytest.mark.parametrize("step", SETUP_STEPS)
def test_cancel_during_setup_step_ends_quietly(
    step: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """SIGTERM during each step of the setup ends the child cancelled, silently."""
    if step == "faulthandler":
        enable = sigterm_before(worker._child.faulthandler.enable)
        monkeypatch.setattr(
            worker._child, "faulthandler", types.SimpleNamespace(enable=enable)
        )
    elif step == "RUNTIME.install":
        runtime = worker._child.RUNTIME
        monkeypatch.setattr(runtime, "install", sigterm_before(runtime.install))
    else:
        original = getattr(worker._child, step)
        monkeypatch.setattr(worker._child, step, sigterm_before(original))

    with ChildProcess(JOB, 30, start_method="fork") as child:
        exit_code = child.wait(timeout=20)
        frames = child.frames

    assert exit_code == -signal.SIGTERM
    assert frames in ([], [{"k": "cancelled"}])
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""
