"""Sinks: isolation from each other, retries in order, bounded memory."""

from __future__ import annotations

import threading
import time

import pytest

from supervisor import TaskState

from . import jobs
from .conftest import Collector

pytestmark = pytest.mark.timeout(90)


class FlakySink:
    """A sink that raises on every third call."""

    def __init__(self) -> None:
        self.calls = 0
        self.received: list[dict] = []

    def __call__(self, message: dict) -> None:
        self.calls += 1
        if self.calls % 3 == 0:
            raise ConnectionError("sink unavailable")
        self.received.append(message)


class SlowSink:
    """A sink that takes two seconds per message, until released."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.release = threading.Event()

    def __call__(self, message: dict) -> None:
        self.release.wait(2.0)
        self.received.append(message)


def test_failing_and_slow_sinks_do_not_delay_others(
    make_supervisor, collector, task_id, monkeypatch
):
    monkeypatch.setattr("supervisor._sinks.FIRST_RETRY_DELAY", 0.001)
    flaky, slow = FlakySink(), SlowSink()
    supervisor = make_supervisor({"flaky": flaky, "slow": slow, "collector": collector})
    tid = task_id("sinks")
    supervisor.start(tid, jobs.log_messages, args=(200,))
    collector.wait_for(lambda: any(m["event"] == "finished" for m in collector.of(tid)))

    assert len(collector.of(tid)) == 202
    assert len(slow.received) < 10
    slow.release.set()
    status = supervisor.wait(tid, 60)
    assert status.state is TaskState.SUCCEEDED
    assert [m["seq"] for m in flaky.received] == list(range(1, 203))
    assert [m["seq"] for m in slow.received] == list(range(1, 203))


def test_overflowing_sink_drops_oldest_and_warns(make_supervisor, task_id):
    gate = threading.Event()
    blocked: list[dict] = []

    def blocked_sink(message: dict) -> None:
        gate.wait(30)
        blocked.append(message)

    collector = Collector()
    supervisor = make_supervisor(
        {"blocked": blocked_sink, "collector": collector}, max_pending_messages=1000
    )
    tid = task_id("overflow")
    # Large messages keep each read, and so each hand-over, well under the limit.
    supervisor.start(tid, jobs.log_messages_and_linger, args=(3000, 2000, 1.0))
    collector.wait_for(lambda: any(m["event"] == "finished" for m in collector.of(tid)))
    gate.set()
    status = supervisor.wait(tid, 60)

    assert status.dropped > 0
    warnings = [m["message"] for m in collector.of(tid) if m.get("source")]
    assert any("sink 'blocked' lost" in text for text in warnings)
    seqs = [m["seq"] for m in blocked]
    assert seqs == sorted(seqs)
    assert blocked[-1]["event"] == "finished"


def test_blocked_sink_reports_drops_once(make_supervisor, task_id, monkeypatch):
    """A sink over its own limit drops messages: one warning per task and sink
    names the total, every sink receives it, and no other sink drops any."""
    monkeypatch.setattr("supervisor._sinks.DROP_REPORT_INTERVAL", 3600.0)
    gate = threading.Event()
    blocked: list[dict] = []

    def blocked_sink(message: dict) -> None:
        gate.wait(30)
        blocked.append(message)

    collector = Collector()
    supervisor = make_supervisor(
        {"blocked": blocked_sink, "collector": collector},
        max_pending_messages=100_000,
        sink_max_pending={"blocked": 10},
    )
    tids = [task_id("drops-a"), task_id("drops-b")]
    for tid in tids:
        supervisor.start(tid, jobs.log_messages, args=(300,))
    for tid in tids:
        collector.wait_for(
            lambda t=tid: any(m["event"] == "finished" for m in collector.of(t))
        )
    gate.set()

    for tid in tids:
        status = supervisor.wait(tid, 60)
        streamed = collector.of(tid)
        assert [m["seq"] for m in streamed] == list(range(1, len(streamed) + 1))
        reports = [m["message"] for m in streamed if "lost" in m["message"]]
        assert reports == [
            f"sink 'blocked' lost {status.dropped} message(s) of this task "
            "because more than 10 were pending"
        ]
        received = [m for m in blocked if m["task_id"] == tid]
        assert len(received) + status.dropped == len(streamed)
        assert received[-2]["message"] == reports[0]
        assert received[-1]["event"] == "finished"


def test_sink_max_pending_rejects_invalid_limit(make_supervisor):
    with pytest.raises(ValueError, match=r"sink_max_pending\['db'\] 0"):
        make_supervisor(sink_max_pending={"db": 0})
    with pytest.raises(TypeError, match="sink_max_pending"):
        make_supervisor(sink_max_pending=[("db", 10)])


def test_set_sink_adds_replaces_and_removes(make_supervisor, task_id):
    first, second = Collector(), Collector()
    supervisor = make_supervisor()
    supervisor.set_sink("main", first)
    tid = task_id("setsink")
    supervisor.start(tid, jobs.return_value)
    supervisor.wait(tid, 30)
    assert first.of(tid)[-1]["event"] == "finished"

    supervisor.set_sink("main", second)
    other = task_id("replaced")
    supervisor.start(other, jobs.return_value)
    supervisor.wait(other, 30)
    assert first.of(other) == []
    assert second.of(other)[-1]["event"] == "finished"

    supervisor.set_sink("main", None)
    last = task_id("removed")
    supervisor.start(last, jobs.return_value)
    supervisor.wait(last, 30)
    assert second.of(last) == []


def test_shutdown_closes_sinks(make_supervisor, task_id):
    closed = threading.Event()

    class ClosingSink:
        def __call__(self, message: dict) -> None:
            pass

        def close(self) -> None:
            closed.set()

    supervisor = make_supervisor({"closing": ClosingSink()})
    supervisor.shutdown()
    assert closed.is_set()


def test_hanging_sink_does_not_block_shutdown_forever(make_supervisor, task_id):
    hang = threading.Event()

    def hanging_sink(message: dict) -> None:
        hang.wait(30)

    supervisor = make_supervisor({"hang": hanging_sink}, sink_drain_timeout=0.5)
    tid = task_id("hang")
    supervisor.start(tid, jobs.return_value)
    began = time.monotonic()
    supervisor.shutdown()
    hang.set()
    assert time.monotonic() - began < 10
