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
from supervisor._sinks import MAX_BATCH_CHARS, SinkFanout
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
    stream = MessageStream("t1", 40)
    started = stream.started(123, "jobs:run")
    messages = stream.log_frame(
        {
            "k": "log",
            "message": "m" * 50,
            "message_type": "debug",
            "progress": 5,
            "ts": 0.0,
            "options": {"message": "fake", "seq": 99, "extra": 1},
        }
    )
    assert started["seq"] == 1
    log, warning = messages
    assert log["seq"] == 2
    assert log["message"] == "m" * 13 + "… [truncated 37 characters]"
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
        ({"k": "result", "value": 1}, "cancel", 0, TaskState.CANCELLED, 0, None),
        ({"k": "exit", "code": 0}, "cancel", 0, TaskState.CANCELLED, 0, None),
        ({"k": "result", "value": 1}, "timeout", 0, TaskState.TIMED_OUT, 0, None),
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


def test_stream_leaves_fitting_cut_message_alone():
    """A message the worker already cut to the limit keeps the worker's marker."""
    text = "w" * 33 + "… [truncated 1048576 characters]"
    stream = MessageStream("t1", len(text))
    (log,) = stream.log_frame({"k": "log", "message": text, "ts": 0.0})
    assert log["message"] == text


def test_stream_cuts_output_line_with_counted_marker():
    stream = MessageStream("t1", 40)
    line = stream.output_line("stdout", "o" * 1000)
    assert line["message"] == "o" * 12 + "… [truncated 988 characters]"
    assert len(line["message"]) == 40


def log_message(task_id: str, seq: int, text: str = "") -> dict:
    return {"task_id": task_id, "seq": seq, "event": "log", "message": text}


def finished_message(task_id: str, seq: int) -> dict:
    return {"task_id": task_id, "seq": seq, "event": "finished", "message": ""}


class GatedSink:
    """A sink that blocks in its first call until ``gate`` is set."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.arrived: list[tuple[str, int]] = []
        self.batches: list[list[dict]] = []
        self.done = threading.Condition()

    def __call__(self, message: dict) -> None:
        self.entered.set()
        self.gate.wait(30)
        with self.done:
            self.arrived.append((message["task_id"], message["seq"]))
            self.done.notify_all()

    def wait_for(self, count: int) -> None:
        with self.done:
            assert self.done.wait_for(lambda: len(self.arrived) >= count, 30)


class GatedBatchSink(GatedSink):
    def send_batch(self, messages: list[dict]) -> None:
        self.entered.set()
        self.gate.wait(30)
        with self.done:
            self.batches.append(messages)
            self.arrived.extend((m["task_id"], m["seq"]) for m in messages)
            self.done.notify_all()


def seqs_of(arrived: list[tuple[str, int]], task_id: str) -> list[int]:
    return [seq for task, seq in arrived if task == task_id]


def test_fanout_serves_tasks_in_turn():
    """A task queued behind a flood is delivered among the flood's first messages."""
    sink = GatedSink()
    fanout = SinkFanout(
        {"slow": sink}, max_pending=10_000, batch_size=500, on_dropped=print
    )
    try:
        fanout.dispatch([log_message("flood", seq) for seq in range(1, 1001)])
        assert sink.entered.wait(10)
        fanout.dispatch([log_message("probe", seq) for seq in range(1, 6)])
        sink.gate.set()
        sink.wait_for(1005)
    finally:
        fanout.stop(5)

    probe_places = [i for i, (task, _) in enumerate(sink.arrived) if task == "probe"]
    assert max(probe_places) < 20
    assert seqs_of(sink.arrived, "flood") == list(range(1, 1001))
    assert seqs_of(sink.arrived, "probe") == list(range(1, 6))


def test_fanout_batch_bounds_text_and_mixes_tasks():
    sink = GatedBatchSink()
    fanout = SinkFanout(
        {"slow": sink}, max_pending=10_000, batch_size=500, on_dropped=print
    )
    huge = "h" * 300_000
    try:
        fanout.dispatch([log_message("flood", seq, huge) for seq in range(1, 21)])
        assert sink.entered.wait(10)
        fanout.dispatch([log_message("probe", seq) for seq in range(1, 4)])
        sink.gate.set()
        sink.wait_for(23)
    finally:
        fanout.stop(5)

    # The first batch was taken before the gate opened, with the flood alone.
    second = sink.batches[1]
    assert [m["seq"] for m in second if m["task_id"] == "probe"] == [1, 2, 3]
    for batch in sink.batches:
        assert sum(len(m["message"]) for m in batch) <= MAX_BATCH_CHARS
    assert seqs_of(sink.arrived, "flood") == list(range(1, 21))
    assert seqs_of(sink.arrived, "probe") == [1, 2, 3]


def test_fanout_drops_from_task_with_most_pending():
    """Over the limit, the flooding task loses its oldest messages, never its
    ``finished`` message, and the quiet task loses none."""
    sink = GatedSink()
    dropped: list[tuple[str, dict[str, int]]] = []
    fanout = SinkFanout(
        {"slow": sink},
        max_pending=100,
        batch_size=500,
        on_dropped=lambda name, counts: dropped.append((name, counts)),
    )
    try:
        fanout.dispatch([log_message("quiet", 1)])
        assert sink.entered.wait(10)
        fanout.dispatch([log_message("flood", seq) for seq in range(1, 301)])
        fanout.dispatch([log_message("quiet", seq) for seq in range(2, 6)])
        fanout.dispatch([log_message("quiet", seq) for seq in range(6, 11)])
        fanout.dispatch([finished_message("flood", 301)])
        reports = fanout.take_unreported("flood")
        sink.gate.set()
        # 100 may wait: the 9 later quiet messages and 91 of the flood.
        sink.wait_for(1 + 9 + 91 + 1)
    finally:
        fanout.stop(5)

    assert seqs_of(sink.arrived, "quiet") == list(range(1, 11))
    flood = seqs_of(sink.arrived, "flood")
    assert flood == list(range(300 - 91 + 1, 302))
    total = sum(counts.get("flood", 0) for _, counts in dropped)
    assert total == 300 - 91
    assert all(name == "slow" for name, _ in dropped)
    assert [(r.sink, r.task_id, r.dropped, r.max_pending) for r in reports] == [
        ("slow", "flood", total, 100)
    ]


def test_fanout_never_drops_drop_reports():
    sink = GatedSink()
    dropped: list[dict[str, int]] = []
    fanout = SinkFanout(
        {"slow": sink},
        max_pending=5,
        batch_size=500,
        on_dropped=lambda name, counts: dropped.append(counts),
    )
    report = log_message("t", 2, "sink 'slow' lost 9 message(s)")
    try:
        fanout.dispatch([log_message("t", 1)])
        assert sink.entered.wait(10)
        fanout.dispatch(
            [report, *(log_message("t", s) for s in range(3, 12))], None, {id(report)}
        )
        fanout.dispatch([log_message("t", s) for s in range(12, 20)])
        sink.gate.set()
        sink.wait_for(7)
    finally:
        fanout.stop(5)

    assert sink.arrived[:2] == [("t", 1), ("t", 2)]
    assert seqs_of(sink.arrived, "t")[2:] == list(range(15, 20))
    assert sum(counts["t"] for counts in dropped) == 17 - 5


def test_fanout_applies_per_sink_limit():
    small, large = GatedSink(), GatedSink()
    dropped: dict[str, int] = {}

    def count(name: str, counts: dict[str, int]) -> None:
        dropped[name] = dropped.get(name, 0) + sum(counts.values())

    fanout = SinkFanout(
        {"small": small, "large": large},
        max_pending=1000,
        sink_max_pending={"small": 10},
        batch_size=500,
        on_dropped=count,
    )
    try:
        fanout.dispatch([log_message("t", 1)])
        assert small.entered.wait(10)
        fanout.dispatch([log_message("t", seq) for seq in range(2, 101)])
        small.gate.set()
        large.gate.set()
        large.wait_for(100)
        small.wait_for(11)
    finally:
        fanout.stop(5)

    assert dropped == {"small": 100 - 1 - 10}
    assert len(large.arrived) == 100
