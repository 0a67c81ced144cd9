"""Every way a child can end, and the state, exit code and signal it gives."""

from __future__ import annotations

import pytest

from supervisor import TaskState

from . import jobs
from .conftest import process_gone, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def supervisor(make_supervisor, collector):
    return make_supervisor({"collector": collector}, max_workers=2)


def test_return_succeeds(supervisor, collector, task_id):
    tid = task_id("return")
    supervisor.start(tid, jobs.return_value, args=("ok",))
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.SUCCEEDED
    assert status.exit_code == 0
    assert status.signal is None
    assert status.progress == 100
    finished = collector.of(tid)[-1]
    assert finished["event"] == "finished"
    assert finished["state"] == "succeeded"
    assert finished["progress"] == 100


def test_sys_exit_fails_with_code(supervisor, task_id):
    tid = task_id("exit3")
    supervisor.start(tid, jobs.exit_with, args=(3,))
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.FAILED
    assert status.exit_code == 3
    assert status.error is not None
    assert status.error.type == "SystemExit"


def test_os_exit_crashes_with_code(supervisor, task_id):
    tid = task_id("osexit7")
    supervisor.start(tid, jobs.exit_abruptly, args=(7,))
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.CRASHED
    assert status.exit_code == 7
    assert status.signal is None


def test_exception_fails_with_traceback(supervisor, collector, task_id):
    tid = task_id("valueerror")
    supervisor.start(tid, jobs.raise_value_error)
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.FAILED
    assert status.error is not None
    assert status.error.type == "ValueError"
    assert status.error.message == "bad value 42"
    assert "raise_value_error" in status.error.traceback
    finished = collector.of(tid)[-1]
    assert finished["error"]["type"] == "ValueError"


def test_sigkill_crashes_with_signal(supervisor, task_id):
    tid = task_id("sigkill")
    supervisor.start(tid, jobs.kill_self)
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.CRASHED
    assert status.signal == "SIGKILL"
    assert status.exit_code is None


def test_segfault_keeps_python_traceback(supervisor, collector, task_id):
    tid = task_id("segfault")
    supervisor.start(tid, jobs.segfault)
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.CRASHED
    assert status.signal == "SIGSEGV"
    assert status.error is not None
    assert "Segmentation fault" in status.error.traceback
    assert "segfault" in status.error.traceback
    stderr_lines = [m for m in collector.of(tid) if m.get("stream") == "stderr"]
    assert any("Segmentation fault" in m["message"] for m in stderr_lines)


def test_failure_keeps_last_progress(supervisor, task_id):
    tid = task_id("progressfail")
    supervisor.start(tid, jobs.report_progress_then_fail, args=(40,))
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.FAILED
    assert status.progress == 40


def test_cancel_kills_grandchild(supervisor, task_id, tmp_path, no_zombies):
    tid = task_id("grandchild")
    pid_file = tmp_path / "pids"
    supervisor.start(tid, jobs.start_grandchild_and_sleep, args=(str(pid_file),))
    assert wait_until(pid_file.exists, 30)
    child_pid, grandchild_pid = map(int, pid_file.read_text().split())

    assert supervisor.cancel(tid) is True
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.CANCELLED
    assert wait_until(lambda: process_gone(grandchild_pid), 10)
    assert process_gone(child_pid)


@pytest.mark.slow
def test_hundred_jobs_in_a_row_succeed(make_supervisor, task_id, no_zombies):
    supervisor = make_supervisor(max_workers=2)
    ids = [task_id(f"row{index}") for index in range(100)]
    for tid in ids:
        supervisor.start(tid, jobs.return_value)
    states = [supervisor.wait(tid, 60).state for tid in ids]
    assert states == [TaskState.SUCCEEDED] * 100
