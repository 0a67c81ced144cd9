"""Jobs that fork: every process writes whole frames to the shared pipe."""

from __future__ import annotations

import os
import signal
from typing import Any

import orjson
import pytest

from tests.worker.childproc import ChildProcess

pytestmark = pytest.mark.timeout(90)

JOBS = "tests.worker.edge_jobs"
WRITERS = 4
FRAMES_PER_WRITER = 300
#: Far above PIPE_BUF (4096 bytes), so unlocked writes of two processes interleave.
MESSAGE_CHARS = 20_000


def parse_valid_frames(data: bytes) -> list[dict[str, Any]]:
    """Parse every line; a line that is not a whole frame fails the test."""
    assert data.endswith(b"\n")
    frames = []
    for number, line in enumerate(data.split(b"\n")[:-1]):
        try:
            frames.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise AssertionError(
                f"line {number} is not a frame: {line[:80]!r}"
            ) from exc
    return frames


def writer_frames(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [frame for frame in frames if "writer" in frame.get("options", {})]


@pytest.mark.parametrize(
    ("job", "value"),
    [
        ("fork_writers", [0] * WRITERS),
        ("pool_writers", [FRAMES_PER_WRITER] * WRITERS),
    ],
)
def test_forked_writers_send_whole_frames(job: str, value: list[int]) -> None:
    """4 forked processes each send 300 frames of 20 KB; all 1,200 arrive whole."""
    args = (WRITERS, FRAMES_PER_WRITER, MESSAGE_CHARS)
    with ChildProcess(f"{JOBS}:{job}", *args) as child:
        exit_code = child.wait(timeout=60)
        frames = parse_valid_frames(child.data.data)
        stderr = child.stderr.data

    assert exit_code == 0
    assert frames[-1] == {"k": "result", "value": value}
    sent = writer_frames(frames)
    assert len(sent) == WRITERS * FRAMES_PER_WRITER
    assert all(len(frame["message"]) == MESSAGE_CHARS for frame in sent)
    for writer in range(WRITERS):
        options = [f["options"] for f in sent if f["options"]["writer"] == writer]
        numbers = [option["number"] for option in options]
        assert numbers == list(range(FRAMES_PER_WRITER))
    assert b"Traceback" not in stderr


def test_pool_workers_end_quietly_at_terminate() -> None:
    """Pool.terminate stops idle workers with SIGTERM, without Cancelled tracebacks."""
    with ChildProcess(f"{JOBS}:pool_writers", WRITERS, 2, 10) as child:
        exit_code = child.wait()
        frames = parse_valid_frames(child.data.data)
        stderr = child.stderr.data

    assert exit_code == 0
    assert frames[-1] == {"k": "result", "value": [2] * WRITERS}
    assert stderr == b""


def test_forked_process_returning_from_job_does_not_report() -> None:
    with ChildProcess(f"{JOBS}:fork_and_return_in_both") as child:
        exit_code = child.wait()
        frames = parse_valid_frames(child.data.data)

    assert exit_code == 0
    assert frames == [
        {**frames[0], "message": "forked process returns"},
        {"k": "result", "value": "parent"},
    ]


def test_cancel_after_fork_ends_both_processes() -> None:
    """The job's process reports the cancel; the forked one ends by SIGTERM."""
    with ChildProcess(f"{JOBS}:fork_then_sleep", 30) as child:
        # Both processes log once before they sleep.
        child.data.wait_for(lambda data: data.count(b"\n") >= 2, timeout=30)
        os.killpg(child.pid, signal.SIGTERM)
        exit_code = child.wait()
        frames = parse_valid_frames(child.data.data)
        stderr = child.stderr.data

    assert exit_code == -signal.SIGTERM
    assert [frame["k"] for frame in frames] == ["log", "log", "log", "cancelled"]
    assert frames[2]["options"] == {"status": -signal.SIGTERM}
    assert b"Traceback" not in stderr
