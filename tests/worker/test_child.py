"""The child entry point, run in real child processes without the supervisor."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from tests.worker.childproc import ChildProcess
from worker import Limits
from worker._child import load_target

pytestmark = pytest.mark.timeout(60)

JOBS = "tests.worker.jobs"


def test_return_sends_result_and_exits_zero() -> None:
    with ChildProcess(f"{JOBS}:return_value") as child:
        exit_code = child.wait()

    assert exit_code == 0
    log, result = child.frames
    assert log["k"] == "log"
    assert log["message"] == "working"
    assert log["progress"] == 10
    assert result == {
        "k": "result",
        "value": {"answer": 42, "when": "2024-05-01", "tags": ["a", "b"]},
    }


def test_spawn_start_method_runs_job() -> None:
    with ChildProcess(f"{JOBS}:return_value", start_method="spawn") as child:
        exit_code = child.wait()

    assert exit_code == 0
    assert [frame["k"] for frame in child.frames] == ["log", "result"]


def test_raise_sends_error_with_traceback() -> None:
    with ChildProcess(f"{JOBS}:raise_value_error") as child:
        exit_code = child.wait()

    assert exit_code == 1
    log, error = child.frames
    assert log["message"] == "about to fail"
    assert error["k"] == "error"
    assert error["type"] == "ValueError"
    assert error["message"] == "invalid row 42"
    assert error["traceback"].startswith("Traceback (most recent call last):")
    assert "in raise_value_error" in error["traceback"]
    assert error["traceback"].endswith("ValueError: invalid row 42")
    assert "_run_target" not in error["traceback"]


def test_sys_exit_code_is_reported_and_kept() -> None:
    with ChildProcess(f"{JOBS}:exit_with", 3) as child:
        exit_code = child.wait()

    assert exit_code == 3
    assert child.frames == [{"k": "exit", "code": 3, "message": None}]


def test_sys_exit_text_exits_one_with_message() -> None:
    with ChildProcess(f"{JOBS}:exit_with", "disk full") as child:
        exit_code = child.wait()

    assert exit_code == 1
    assert child.frames == [{"k": "exit", "code": 1, "message": "disk full"}]


def test_os_exit_keeps_earlier_frames_without_report() -> None:
    """5,000 messages of 2 KB written just before os._exit all arrive, in order."""
    with ChildProcess(f"{JOBS}:log_then_os_exit", 5000, 2048, 7) as child:
        exit_code = child.wait()

    assert exit_code == 7
    frames = child.frames
    assert [frame["k"] for frame in frames] == ["log"] * 5000
    assert [frame["options"]["number"] for frame in frames] == list(range(5000))
    assert all(len(frame["message"]) == 2048 for frame in frames)


def test_import_error_is_reported_as_error_frame() -> None:
    with ChildProcess("tests.worker.no_such_module:run") as child:
        exit_code = child.wait()

    assert exit_code == 1
    (error,) = child.frames
    assert error["type"] == "ModuleNotFoundError"
    assert "tests.worker.no_such_module" in error["message"]


def test_invalid_target_is_reported_as_error_frame() -> None:
    with ChildProcess("tests.worker.jobs") as child:
        exit_code = child.wait()

    assert exit_code == 1
    (error,) = child.frames
    assert error["type"] == "ValueError"
    assert error["message"] == (
        "invalid target 'tests.worker.jobs'; expected 'package.module:function'"
    )


def test_stdout_and_stderr_lines_are_captured() -> None:
    with ChildProcess(f"{JOBS}:write_output") as child:
        exit_code = child.wait()

    assert exit_code == 0
    assert child.stdout.data == (
        b"printed line\nraw stdout line\nno newline at the end"
    )
    assert child.stderr.data == b"printed error\nraw stderr line\n"


def test_segfault_traceback_reaches_stderr_pipe() -> None:
    with ChildProcess(f"{JOBS}:segfault") as child:
        exit_code = child.wait()

    assert exit_code == -signal.SIGSEGV
    assert [frame["message"] for frame in child.frames] == ["before the crash"]
    stderr = child.stderr.data.decode()
    assert "Fatal Python error: Segmentation fault" in stderr
    assert "in segfault" in stderr


def test_closed_alive_pipe_kills_child_and_grandchild() -> None:
    with ChildProcess(f"{JOBS}:start_grandchild_and_sleep") as child:
        grandchild = child.wait_for_frame("log")["options"]["pid"]
        child.close_alive()
        exit_code = child.wait(timeout=10)
        grandchild_gone = _wait_until_gone(grandchild, timeout=5)

    assert exit_code == -signal.SIGKILL
    assert grandchild_gone


def test_cancel_sends_cancelled_and_ends_by_sigterm() -> None:
    with ChildProcess(f"{JOBS}:start_grandchild_and_sleep") as child:
        grandchild = child.wait_for_frame("log")["options"]["pid"]
        os.killpg(child.pid, signal.SIGTERM)
        exit_code = child.wait(timeout=10)
        grandchild_gone = _wait_until_gone(grandchild, timeout=5)

    assert exit_code == -signal.SIGTERM
    assert child.frames[-1] == {"k": "cancelled"}
    assert grandchild_gone


def test_large_return_value_is_truncated_to_frame_limit() -> None:
    limits = Limits(max_message_chars=1000, max_options_bytes=1000)
    with ChildProcess("tests.worker.jobs:return_text", 100_000, limits=limits) as c:
        exit_code = c.wait()
        raw = c.data.data

    assert exit_code == 0
    assert len(raw) <= limits.max_frame_bytes
    assert c.frames == [{"k": "result", "value": "… [truncated 100002 bytes]"}]


def test_load_target_follows_dotted_attribute() -> None:
    assert load_target("os.path:join") is os.path.join


def test_load_target_rejects_value_that_is_not_callable() -> None:
    with pytest.raises(TypeError, match=r"target 'os:sep' is not callable"):
        load_target("os:sep")


def _wait_until_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_logging_after_reader_closed_does_not_raise() -> None:
    with ChildProcess(f"{JOBS}:log_until_pipe_breaks") as child:
        child.wait_for_frame("log")
        child.close_data()
        exit_code = child.wait()

    assert exit_code == 0
    stderr = child.stderr.data.decode()
    assert stderr.count("worker: task test-task: cannot send log messages") == 1
    assert "BrokenPipeError" in stderr
