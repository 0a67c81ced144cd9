"""Backpressure: a slow but healthy sink holds the jobs back instead of losing
messages, while a failing or stalled sink holds nobody back."""

from __future__ import annotations

import threading
import time

import pytest

from supervisor import Supervisor, TaskState

from . import jobs
from .conftest import Collector

pytestmark = pytest.mark.timeout(90)

MAX_PENDING = 200
MESSAGES = 3000


class SlowSink:
    """A sink that takes about a millisecond per message and notes the most
    messages it ever saw pending behind the one it receives."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.max_pending_seen = 0
        self.supervisor: Supervisor | None = None

    def __call__(self, message: dict) -> None:
        time.sleep(0.001)
        assert self.supervisor is not None
        worker = self.supervisor._fanout.worker("slow")
        if worker is not None:
            self.max_pending_seen = max(self.max_pending_seen, worker.pending)
        self.received.append(message)


def failing_sink(message: dict) -> None:
    raise ConnectionError("sink unavailable")


def finished(collector: Collector, tid: str) -> bool:
    return any(m["event"] == "finished" for m in collector.of(tid))


def job_texts(collector: Collector, tid: str) -> list[str]:
    """Return the texts the job logged, without the supervisor's warnings."""
    return [
        m["message"]
        for m in collector.of(tid)
        if m["event"] == "log" and m.get("source") != "supervisor"
    ]


def test_slow_healthy_sink_drops_nothing(make_supervisor, task_id):
    slow = SlowSink()
    supervisor = make_supervisor({"slow": slow}, max_pending_messages=MAX_PENDING)
    slow.supervisor = supervisor
    tid = task_id("slow")
    supervisor.start(tid, jobs.log_messages, args=(MESSAGES,))

    status = supervisor.wait(tid, 60)

    assert status.state is TaskState.SUCCEEDED
    assert status.dropped == 0
    assert [m["seq"] for m in slow.received] == list(range(1, MESSAGES + 3))
    assert 0 < slow.max_pending_seen <= MAX_PENDING


def test_failing_sink_does_not_hold_the_job_back(
    make_supervisor, collector, task_id, monkeypatch
):
    monkeypatch.setattr("supervisor._sinks.FAILURE_LOG_INTERVAL", 3600.0)
    supervisor = make_supervisor(
        {"failing": failing_sink, "collector": collector},
        max_pending_messages=MAX_PENDING,
        sink_drain_timeout=0.5,
    )
    tid = task_id("failing")
    supervisor.start(tid, jobs.log_messages, args=(MESSAGES,))

    collector.wait_for(lambda: finished(collector, tid), timeout=60)

    status = supervisor.status(tid)
    assert status.state is TaskState.SUCCEEDED
    assert len(job_texts(collector, tid)) == MESSAGES
    assert status.dropped >= MESSAGES - MAX_PENDING


def test_stalled_sink_stops_holding_the_job_back(make_supervisor, collector, task_id):
    release = threading.Event()

    def stalled_sink(message: dict) -> None:
        release.wait()

    supervisor = make_supervisor(
        {"stalled": stalled_sink, "collector": collector},
        max_pending_messages=MAX_PENDING,
        sink_drain_timeout=0.5,
        sink_stall_seconds=0.5,
    )
    tid = task_id("stalled")
    try:
        supervisor.start(tid, jobs.log_messages, args=(MESSAGES,))

        collector.wait_for(lambda: finished(collector, tid), timeout=60)

        status = supervisor.status(tid)
        assert status.state is TaskState.SUCCEEDED
        assert len(job_texts(collector, tid)) == MESSAGES
        assert status.dropped >= MESSAGES - MAX_PENDING
    finally:
        release.set()


def test_each_sink_gets_its_own_nested_options(make_supervisor, collector, task_id):
    def mutating_sink(message: dict) -> None:
        for value in message.values():
            if isinstance(value, list):
                value.append("changed")
            elif isinstance(value, dict):
                value["changed"] = True
        message["message"] = "changed"

    supervisor = make_supervisor({"mutating": mutating_sink, "collector": collector})
    tid = task_id("copies")
    supervisor.start(tid, jobs.log_nested_and_flat_options)

    status = supervisor.wait(tid, 30)

    assert status.state is TaskState.SUCCEEDED
    logged = {m["message"]: m for m in collector.of(tid) if m["event"] == "log"}
    assert logged["nested"]["tags"] == ["a", "b"]
    assert logged["nested"]["table"] == {"rows": 3}
    assert logged["flat"]["table"] == "orders"
    assert "plain" in logged
