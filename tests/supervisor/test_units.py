"""Unit tests of the parts that need no child process."""

from __future__ import annotations

import math
import signal
import threading

import pytest

from supervisor import InvalidStateTransitionError, TaskState
from supervisor._escalation import terminate
from supervisor._framing import LineSplitter
from supervisor._outcome import decide_outcome
from supervisor._progress import ProgressTracker
from supervisor._sinks import SinkFanout
from supervisor._status import check_transition
from supervisor._stream import MessageStream

pytestmark = pytest.mark.timeout(30)


def test_splitter_keeps_partial_tail():
    splitter = LineSplitter(100)
    assert splitter.feed(b'{"a"') == ([], 0)
    assert splitter.feed(b': 1}\n{"b": 2}\n{"c"') == ([b'{"a": 1}', b'{"b": 2}'], 0)
    assert splitter.finish() == b'{"c"'


def test_splitter_discards_overlong_line_across_reads():
    splitter = LineSplitter(10)
    assert splitter.feed(b"x" * 8) == ([], 0)
    assert splitter.feed(b"x" * 8) == ([], 1)
    assert splitter.feed(b"y" * 50) == ([], 0)
    assert splitter.feed(b"yy\nok\n") == ([b"ok"], 0)


def test_splitter_discards_overlong_complete_line():
    splitter = LineSplitter(10)
    assert splitter.feed(b"short\n" + b"z" * 20 + b"\nend\n") == ([b"short", b"end"], 1)


def test_progress_sequence_from_job_values():
    tracker = ProgressTracker()
    values = [10, 50, 30, 200, -5, "abc", math.nan, math.inf, None, True, "75", 99.9999]
    results = [tracker.apply(value) for value in values]
    assert [progress for progress, _ in results] == [
        10, 50, 50, 100, 100, None, None, 100, None, None, None, 100,
    ]  # fmt: skip
    warned = [values[i] for i, (_, warning) in enumerate(results) if warning]
    assert warned[:2] == [200, -5]
    assert results[5][1] == (
        "ignored progress value 'abc': progress must be a number from 0 to 100"
    )


def test_progress_final_is_100_only_on_success():
    tracker = ProgressTracker()
    tracker.apply(42.7)
    assert tracker.final(False) == 42
    assert tracker.final(True) == 100


def test_stream_numbers_and_merges_options():
    stream = MessageStream("t1", 20)
    started = stream.started(123, "jobs:run")
    messages = stream.log_frame(
        {
            "k": "log",
            "message": "m" * 30,
            "message_type": "debug",
            "progress": 5,
            "ts": 0.0,
            "options": {"message": "fake", "seq": 99, "extra": 1},
        }
    )
    assert started["seq"] == 1
    log, warning = messages
    assert log["seq"] == 2
    assert log["message"].startswith("m" * 20)
    assert "10 characters cut" in log["message"]
    assert log["message_type"] == "info"
    assert log["option_message"] == "fake"
    assert log["option_seq"] == 99
    assert log["extra"] == 1
    assert log["timestamp"] == "1970-01-01T00:00:00.000000+00:00"
    assert warning["seq"] == 3
    assert "unknown message type 'debug'" in warning["message"]


def test_stream_finished_carries_outcome():
    stream = MessageStream("t1", 100)
    stream.progress.apply(30)
    message = stream.finished(TaskState.CRASHED, None, "SIGSEGV", None, "Task crashed")
    assert message["progress"] == 30
    assert message["state"] == "crashed"
    assert message["signal"] == "SIGSEGV"
    assert message["message_type"] == "error"


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (TaskState.QUEUED, TaskState.SUCCEEDED),
        (TaskState.SUCCEEDED, TaskState.RUNNING),
        (TaskState.CANCELLED, TaskState.CANCELLED),
    ],
)
def test_illegal_transition_names_states(current, new):
    with pytest.raises(InvalidStateTransitionError, match=f"from '{current.value}'"):
        check_transition("t1", current, new)


@pytest.mark.parametrize(
    ("report", "stop", "exitcode", "state", "exit_code", "signal_name"),
    [
        ({"k": "result", "value": 1}, None, 0, TaskState.SUCCEEDED, 0, None),
        ({"k": "exit", "code": 0}, None, 0, TaskState.SUCCEEDED, 0, None),
        ({"k": "exit", "code": 3}, None, 3, TaskState.FAILED, 3, None),
        (None, None, 7, TaskState.CRASHED, 7, None),
        (None, None, -9, TaskState.CRASHED, None, "SIGKILL"),
        (None, "cancel", -15, TaskState.CANCELLED, None, "SIGTERM"),
        ({"k": "cancelled"}, None, -15, TaskState.CANCELLED, None, "SIGTERM"),
        (None, "timeout", -9, TaskState.TIMED_OUT, None, "SIGKILL"),
        ({"k": "result", "value": 1}, "cancel", 0, TaskState.SUCCEEDED, 0, None),
    ],
)
def test_outcome_table(report, stop, exitcode, state, exit_code, signal_name):
    outcome = decide_outcome(report, stop, exitcode, "tail")
    assert outcome.state is state
    assert outcome.exit_code == exit_code
    assert outcome.signal == signal_name


def test_crash_outcome_keeps_stderr_tail():
    outcome = decide_outcome(None, None, -11, "Fatal Python error: Segmentation fault")
    assert outcome.error is not None
    assert outcome.error.traceback == "Fatal Python error: Segmentation fault"
    assert "SIGSEGV" in outcome.error.message


def test_terminate_escalates_when_process_stays():
    sent: list[int] = []
    escalated = threading.Event()
    terminate(lambda s: sent.append(s) or True, lambda t: False, 0.1, escalated.set)
    assert sent == [signal.SIGTERM, signal.SIGKILL]
    assert escalated.is_set()


def test_terminate_stops_when_process_exits():
    sent: list[int] = []
    terminate(lambda s: sent.append(s) or True, lambda t: True, 0.1, lambda: None)
    assert sent == [signal.SIGTERM]


def test_fanout_retries_in_order(monkeypatch):
    monkeypatch.setattr("supervisor._sinks.FIRST_RETRY_DELAY", 0.001)
    calls = 0
    received: list[int] = []
    delivered = threading.Event()

    def flaky(message: dict) -> None:
        nonlocal calls
        calls += 1
        if calls % 3 == 0:
            raise OSError("down")
        received.append(message["seq"])

    fanout = SinkFanout(
        {"flaky": flaky}, max_pending=100, batch_size=10, on_dropped=print
    )
    messages = [{"task_id": "t", "seq": i, "event": "log"} for i in range(1, 30)] + [
        {"task_id": "t", "seq": 30, "event": "finished"}
    ]
    fanout.dispatch(messages, {id(messages[-1]): delivered.set})
    assert delivered.wait(10)
    fanout.stop(1)
    assert received == list(range(1, 31))
