"""How the child reports and exits after unusual ends of the job."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.worker.childproc import ChildProcess

pytestmark = pytest.mark.timeout(60)

JOBS = "tests.worker.jobs"
EDGE_JOBS = "tests.worker.edge_jobs"


@pytest.mark.parametrize("code", [0, 1, 255, True, False])
def test_exit_code_in_range_is_kept(code: int) -> None:
    with ChildProcess(f"{JOBS}:exit_with", code) as child:
        exit_code = child.wait()

    assert exit_code == int(code)
    assert child.frames == [{"k": "exit", "code": int(code), "message": None}]


@pytest.mark.parametrize("code", [256, -1, -15, 2**70])
def test_exit_code_out_of_range_exits_one(code: int) -> None:
    """The frame carries the status the process exits with, never a negative one."""
    with ChildProcess(f"{JOBS}:exit_with", code) as child:
        exit_code = child.wait()

    assert exit_code == 1
    message = f"exit code {code} is outside 0..255, so the process exited with 1"
    assert child.frames == [{"k": "exit", "code": 1, "message": message}]


@pytest.mark.parametrize(
    ("raises", "message"),
    [
        (
            SystemExit,
            "<tests.worker.edge_jobs.UnprintableError object "
            "(str() raised SystemExit)>",
        ),
        (
            KeyboardInterrupt,
            "<tests.worker.edge_jobs.UnprintableError object "
            "(str() raised KeyboardInterrupt)>",
        ),
        (RuntimeError, "UnprintableError('never shown')"),
    ],
)
def test_exception_with_failing_str_is_reported(
    raises: type[BaseException], message: str
) -> None:
    with ChildProcess(f"{EDGE_JOBS}:raise_unprintable", raises) as child:
        exit_code = child.wait()

    assert exit_code == 1
    (error,) = child.frames
    assert error["k"] == "error"
    assert error["type"] == "tests.worker.edge_jobs.UnprintableError"
    assert error["message"] == message
    assert error["traceback"].startswith("Traceback (most recent call last):")
    assert "in raise_unprintable" in error["traceback"]


def test_exit_with_unprintable_value_is_reported() -> None:
    with ChildProcess(f"{EDGE_JOBS}:exit_with_unprintable") as child:
        exit_code = child.wait()

    assert exit_code == 1
    assert child.frames == [
        {
            "k": "exit",
            "code": 1,
            "message": "<tests.worker.edge_jobs.Unprintable object "
            "(str() raised SystemExit)>",
        }
    ]


def test_unencodable_return_value_is_reported_as_error() -> None:
    with ChildProcess(f"{EDGE_JOBS}:return_unprintable") as child:
        exit_code = child.wait()

    assert exit_code == 1
    (error,) = child.frames
    assert error["k"] == "error"
    assert error["type"] == "SystemExit"
    assert error["message"] == "repr() of Unprintable"


def test_locked_logging_handler_does_not_keep_child_alive() -> None:
    """A thread holding a handler's lock delays the exit by the flush timeout only."""
    with ChildProcess(f"{EDGE_JOBS}:return_while_handler_locked") as child:
        exit_code = child.wait(timeout=20)

    assert exit_code == 0
    assert child.frames == [{"k": "result", "value": "returned"}]
    assert child.stderr.data.decode() == (
        "worker: task test-task: flushing the logging handlers timed out after "
        "2 s, so the process exits without waiting for them\n"
    )


def test_logging_handlers_are_flushed_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    with ChildProcess(f"{EDGE_JOBS}:log_through_memory_handler", str(path)) as child:
        exit_code = child.wait()

    assert exit_code == 0
    assert path.read_text() == "buffered line\n"
