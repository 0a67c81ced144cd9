"""Sinks that misbehave, floods of large messages, jobs that attack the supervisor."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor import (
    InvalidTaskIdError,
    Supervisor,
    SupervisorClosedError,
    TaskState,
)
from supervisor._sinks import MESSAGE_OVERHEAD_BYTES, SinkFanout

from . import jobs, robust_jobs
from .conftest import Collector, process_gone, wait_until


def test_mutating_sink_leaves_other_sinks_intact(make_supervisor, task_id):
    """A sink that changes its message dicts neither breaks another sink nor
    itself, and wait() returns."""
    seen: list[tuple[str, int]] = []

    def mutating_sink(message: dict) -> None:
        seen.append((message["task_id"], message["seq"]))
        message.pop("event")
        message["seq"] = -1
        message["task_id"] = "changed"
        if isinstance(message.get("error"), dict):
            message["error"]["type"] = "changed"

    collector = Collector()
    supervisor = make_supervisor({"mutating": mutating_sink, "healthy": collector})
    first, second = task_id("mutate-a"), task_id("mutate-b")

    supervisor.start(first, jobs.raise_value_error)
    status = supervisor.wait(first, 30)
    supervisor.start(second, jobs.log_messages, args=(20,))
    second_status = supervisor.wait(second, 30)

    assert status.state is TaskState.FAILED
    assert second_status.state is TaskState.SUCCEEDED
    for tid, final in ((first, status), (second, second_status)):
        streamed = collector.of(tid)
        assert [m["seq"] for m in streamed] == list(range(1, final.message_count + 1))
        assert streamed[0]["event"] == "started"
        assert streamed[-1]["event"] == "finished"
        assert [seq for task, seq in seen if task == tid] == [
            m["seq"] for m in streamed
        ]
    assert collector.of(first)[-1]["error"]["type"] == "ValueError"


def test_sink_raising_base_exception_is_retried(make_supervisor, task_id, monkeypatch):
    monkeypatch.setattr("supervisor._sinks.FIRST_RETRY_DELAY", 0.001)
    calls: list[int] = []

    def exiting_sink(message: dict) -> None:
        calls.append(message["seq"])
        if len(calls) == 1:
            raise SystemExit(3)

    supervisor = make_supervisor({"exiting": exiting_sink})
    tid = task_id("base-exception")
    supervisor.start(tid, jobs.log_messages, args=(3,))
    status = supervisor.wait(tid, 30)

    assert status.state is TaskState.SUCCEEDED
    assert calls == [1, *range(1, status.message_count + 1)]


def big_message(task_id: str, seq: int, size: int) -> dict:
    return {"task_id": task_id, "seq": seq, "event": "log", "message": "b" * size}


def test_fanout_keeps_pending_bytes_within_budget():
    budget = 1 << 20
    gate, entered = threading.Event(), threading.Event()
    dropped: list[dict[str, int]] = []

    def blocked_sink(message: dict) -> None:
        entered.set()
        gate.wait(30)

    fanout = SinkFanout(
        {"blocked": blocked_sink},
        max_pending=100_000,
        max_pending_bytes=budget,
        batch_size=500,
        on_dropped=lambda name, counts: dropped.append(counts),
    )
    worker = fanout.worker("blocked")
    assert worker is not None
    size = 64 * 1024
    try:
        fanout.dispatch([big_message("t", 1, size)])
        assert entered.wait(10)
        for seq in range(2, 101):
            fanout.dispatch([big_message("t", seq, size)])
            assert worker.pending_bytes <= budget
        reports = fanout.take_unreported("t")
    finally:
        gate.set()
        fanout.stop(5)

    fitting = budget // (size + MESSAGE_OVERHEAD_BYTES)
    # One message is in the sink's hands and counts no more.
    assert sum(counts["t"] for counts in dropped) == 100 - 1 - fitting
    assert [(r.sink, r.dropped, r.over_bytes) for r in reports] == [
        ("blocked", 100 - 1 - fitting, budget)
    ]


def test_blocked_sink_drops_large_messages_by_bytes(make_supervisor, task_id):
    budget = 2 << 20
    gate = threading.Event()
    blocked: list[dict] = []

    def blocked_sink(message: dict) -> None:
        gate.wait(30)
        blocked.append(message)

    collector = Collector()
    supervisor = make_supervisor(
        {"blocked": blocked_sink, "collector": collector},
        sink_max_pending_bytes={"blocked": budget},
    )
    tid = task_id("bytes")
    supervisor.start(tid, jobs.flood_large_messages, args=(200, 64 * 1024))
    collector.wait_for(lambda: any(m["event"] == "finished" for m in collector.of(tid)))
    gate.set()
    status = supervisor.wait(tid, 60)

    assert status.state is TaskState.SUCCEEDED
    assert status.dropped > 0
    streamed = collector.of(tid)
    assert [m["seq"] for m in streamed] == list(range(1, len(streamed) + 1))
    reports = [m["message"] for m in streamed if m.get("source") == "supervisor"]
    assert reports
    assert all(f"more than {budget} bytes were pending" in text for text in reports)
    assert len(blocked) + status.dropped == len(streamed)
    assert blocked[-1]["event"] == "finished"


def test_max_pending_bytes_rejects_invalid_value(make_supervisor):
    with pytest.raises(ValueError, match="max_pending_bytes 0"):
        make_supervisor(max_pending_bytes=0)
    with pytest.raises(ValueError, match=r"sink_max_pending_bytes\['db'\] -1"):
        make_supervisor(sink_max_pending_bytes={"db": -1})


def test_forkserver_death_spares_running_task(
    make_supervisor, task_id, tmp_path, no_zombies
):
    """A job that kills the forkserver does not end another running task, and
    the next task starts through a new forkserver."""
    collector = Collector()
    supervisor = make_supervisor({"collector": collector}, start_method="forkserver")
    survivor, killer, later = task_id("survivor"), task_id("killer"), task_id("later")
    release = tmp_path / "release"

    supervisor.start(
        survivor, robust_jobs.log_until_file_exists, args=(str(release), 5, 5)
    )
    collector.wait_for(lambda: len(collector.texts(survivor)) == 5)
    supervisor.start(killer, robust_jobs.kill_forkserver)
    supervisor.wait(killer, 30)
    release.touch()
    status = supervisor.wait(survivor, 30)
    supervisor.start(later, jobs.return_value)
    later_status = supervisor.wait(later, 30)

    assert status.state is TaskState.SUCCEEDED
    assert status.exit_code is None
    assert status.signal is None
    texts = collector.texts(survivor)
    assert texts == [f"before {i}" for i in range(5)] + [f"after {i}" for i in range(5)]
    finished = collector.of(survivor)[-1]
    assert "exit status unknown" in finished["message"]
    assert later_status.state is TaskState.SUCCEEDED
    assert later_status.exit_code == 0


@pytest.fixture
def grandchild_pid_file(tmp_path: Path) -> Iterator[Path]:
    """Return the file the job writes its pids to; kill the grandchild at the end."""
    path = tmp_path / "pids"
    yield path
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(path.read_text().split()[1]), signal.SIGKILL)


def test_cancel_kills_grandchild_in_own_session(
    make_supervisor, task_id, grandchild_pid_file
):
    supervisor = make_supervisor()
    tid = task_id("setsid")
    supervisor.start(
        tid,
        robust_jobs.start_detached_grandchild_and_sleep,
        args=(str(grandchild_pid_file),),
    )
    assert wait_until(grandchild_pid_file.exists, 30)
    grandchild = int(grandchild_pid_file.read_text().split()[1])
    assert os.getsid(grandchild) == grandchild

    assert supervisor.cancel(tid)
    status = supervisor.wait(tid, 30)

    assert status.state is TaskState.CANCELLED
    assert wait_until(lambda: process_gone(grandchild), 10)


def test_shutdown_inside_sink_is_safe(make_supervisor, task_id):
    """shutdown() called by a sink returns, closes the supervisor once, and a
    supervisor created afterwards works."""
    returned = threading.Event()
    finished_calls: list[int] = []
    holder: list[Supervisor] = []

    def shutting_sink(message: dict) -> None:
        if message["event"] == "finished":
            finished_calls.append(message["seq"])
            holder[0].shutdown()
            returned.set()

    first = make_supervisor({"shutting": shutting_sink})
    holder.append(first)
    first.start(task_id("inside"), jobs.return_value)
    assert returned.wait(30)
    first.shutdown()

    with pytest.raises(SupervisorClosedError):
        first.start(task_id("refused"), jobs.return_value)
    assert finished_calls == [2]

    collector = Collector()
    second = make_supervisor({"collector": collector})
    tid = task_id("after")
    second.start(tid, jobs.log_messages, args=(5,))
    status = second.wait(tid, 30)
    assert status.state is TaskState.SUCCEEDED
    assert len(collector.of(tid)) == status.message_count


def test_shutdown_twice_from_threads(make_supervisor):
    supervisor = make_supervisor()
    threads = [threading.Thread(target=supervisor.shutdown) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    supervisor.shutdown()


@pytest.mark.parametrize("bad_id", [["a"], {"a": 1}, 7, None])
def test_lookups_reject_non_str_task_id(make_supervisor, bad_id):
    supervisor = make_supervisor()
    with pytest.raises(InvalidTaskIdError, match="invalid task id"):
        supervisor.status(bad_id)
    with pytest.raises(InvalidTaskIdError, match="invalid task id"):
        supervisor.cancel(bad_id)
    with pytest.raises(InvalidTaskIdError, match="invalid task id"):
        supervisor.wait(bad_id, 1)


def test_wait_rejects_invalid_timeout(make_supervisor, task_id):
    supervisor = make_supervisor()
    tid = task_id("timeout-check")
    supervisor.start(tid, jobs.return_value)
    with pytest.raises(TypeError, match=r"invalid timeout 'x'"):
        supervisor.wait(tid, timeout="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="invalid timeout True"):
        supervisor.wait(tid, timeout=True)
    with pytest.raises(ValueError, match=r"invalid timeout -1"):
        supervisor.wait(tid, timeout=-1)
    with pytest.raises(ValueError, match="invalid timeout nan"):
        supervisor.wait(tid, timeout=float("nan"))
    assert supervisor.wait(tid, timeout=float("inf")).state is TaskState.SUCCEEDED


def test_wait_after_end_returns_at_once(make_supervisor, task_id):
    supervisor = make_supervisor()
    tid = task_id("zero-timeout")
    supervisor.start(tid, jobs.return_value)
    supervisor.wait(tid, 30)
    started = time.monotonic()
    assert supervisor.wait(tid, 0).state is TaskState.SUCCEEDED
    assert time.monotonic() - started < 5
