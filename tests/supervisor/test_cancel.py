"""Cancelling, timeouts and the escalation from SIGTERM to SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from supervisor import TaskState

from . import jobs
from .conftest import process_gone, wait_until

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]


def test_flooding_job_cancels_and_next_job_runs(
    make_supervisor, collector, task_id, no_zombies
):
    supervisor = make_supervisor({"collector": collector}, grace_period=2.0)
    flood, after = task_id("flood"), task_id("after")
    supervisor.start(flood, jobs.flood_large_messages, args=(2000, 1 << 20))
    collector.wait_for(lambda: len(collector.of(flood)) >= 2)
    time.sleep(0.1)

    began = time.monotonic()
    assert supervisor.cancel(flood) is True
    assert time.monotonic() - began < 2.0 + 1.0
    supervisor.start(after, jobs.log_messages, args=(500,))

    assert supervisor.wait(flood, 30).state is TaskState.CANCELLED
    assert supervisor.wait(after, 30).state is TaskState.SUCCEEDED
    assert len(collector.texts(after)) == 500
    supervisor.shutdown()


def test_sigterm_ignored_escalates_to_sigkill(make_supervisor, collector, task_id):
    supervisor = make_supervisor({"collector": collector}, grace_period=0.5)
    tid = task_id("stubborn")
    supervisor.start(tid, jobs.ignore_sigterm_and_sleep, args=(60,))
    collector.wait_for(lambda: "ignoring SIGTERM" in collector.texts(tid))

    supervisor.cancel(tid)
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.CANCELLED
    assert status.signal == "SIGKILL"


def test_grandchild_ignoring_sigterm_is_killed(
    make_supervisor, task_id, tmp_path, no_zombies
):
    supervisor = make_supervisor(grace_period=0.5)
    tid = task_id("stubborngrandchild")
    pid_file = tmp_path / "pids"
    supervisor.start(tid, jobs.start_grandchild_and_sleep, args=(str(pid_file), True))
    assert wait_until(pid_file.exists, 30)
    child_pid, grandchild_pid = map(int, pid_file.read_text().split())
    # The grandchild installs its handler while Python starts.
    time.sleep(0.5)

    supervisor.cancel(tid)
    assert supervisor.wait(tid, 30).state is TaskState.CANCELLED
    assert wait_until(lambda: process_gone(grandchild_pid), 10)
    assert process_gone(child_pid)


def test_cancel_returns_false_when_ended(make_supervisor, task_id):
    supervisor = make_supervisor()
    tid = task_id("ended")
    supervisor.start(tid, jobs.return_value)
    supervisor.wait(tid, 30)
    assert supervisor.cancel(tid) is False
    assert supervisor.cancel(task_id("neverstarted")) is False


def test_timeout_ends_timed_out(make_supervisor, task_id):
    supervisor = make_supervisor(grace_period=0.5)
    tid = task_id("slow")
    supervisor.start(tid, jobs.sleep, args=(60,), timeout=0.5)
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.TIMED_OUT


SUPERVISING_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from supervisor import Supervisor
    from tests.supervisor import jobs

    supervisor = Supervisor()
    supervisor.start("orphan-check", jobs.start_grandchild_and_sleep,
                     args=(sys.argv[1],))
    time.sleep(120)
    """
)


@pytest.mark.slow
def test_killed_supervisor_leaves_no_children(tmp_path):
    pid_file = tmp_path / "pids"
    process = subprocess.Popen(
        [sys.executable, "-c", SUPERVISING_SCRIPT, str(pid_file)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert wait_until(pid_file.exists, 60)
        child_pid, grandchild_pid = map(int, pid_file.read_text().split())
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        assert wait_until(lambda: process_gone(child_pid), 5)
        assert wait_until(lambda: process_gone(grandchild_pid), 5)
    finally:
        process.kill()
        process.wait(10)
