"""What sinks receive from a running job: order, completeness, odd values."""

from __future__ import annotations

import json
import math

import pytest

from supervisor import TaskState

from . import jobs

pytestmark = pytest.mark.timeout(90)


class BatchCollector:
    """A sink with ``send_batch``, keeping every batch it receives."""

    def __init__(self) -> None:
        self.batches: list[list[dict]] = []

    def send_batch(self, messages: list[dict]) -> None:
        self.batches.append(list(messages))

    def of(self, task_id: str) -> list[dict]:
        return [m for batch in self.batches for m in batch if m["task_id"] == task_id]


def assert_complete_stream(messages: list[dict]) -> None:
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    assert messages[0]["event"] == "started"
    assert messages[-1]["event"] == "finished"


def test_abrupt_exit_keeps_every_message(make_supervisor, collector, task_id):
    supervisor = make_supervisor({"collector": collector})
    tid = task_id("abrupt")
    supervisor.start(tid, jobs.log_then_exit_abruptly, args=(5000, 2048))
    status = supervisor.wait(tid, 60)

    texts = collector.texts(tid)
    assert len(texts) == 5000
    assert [int(text.split()[0]) for text in texts] == list(range(5000))
    assert status.state is TaskState.SUCCEEDED or status.exit_code == 0
    assert_complete_stream(collector.of(tid))


def test_plain_logger_last_line_arrives(make_supervisor, collector, task_id):
    supervisor = make_supervisor({"collector": collector})
    tid = task_id("lastline")
    supervisor.start(tid, jobs.log_last_line_through_handler)
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.SUCCEEDED
    assert "last" in collector.texts(tid)


def test_unpicklable_options_arrive_as_text(make_supervisor, collector, task_id):
    supervisor = make_supervisor({"collector": collector})
    tid = task_id("hostile")
    supervisor.start(tid, jobs.log_hostile_options)
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.SUCCEEDED

    messages = {m["message"]: m for m in collector.of(tid) if m["event"] == "log"}
    assert "lambda" in messages["unpicklable"]["callback"]
    assert isinstance(messages["unpicklable"]["lock"], str)
    # "error" is a field of the message, so the option keeps a prefixed key.
    assert "error" not in messages["coded"]
    assert "disk full" in str(messages["coded"]["option_error"])
    failed = next(text for text in messages if text.startswith("failed"))
    assert "CodedError" in failed
    assert [f"ordinary {i}" for i in range(10)] == [
        text for text in collector.texts(tid) if text.startswith("ordinary")
    ]
    assert supervisor.active_tasks() == []


def test_json_hostile_options_arrive_as_json(make_supervisor, collector, task_id):
    batch_sink = BatchCollector()
    supervisor = make_supervisor({"collector": collector, "batch": batch_sink})
    tid = task_id("jsonhostile")
    supervisor.start(tid, jobs.log_json_hostile_options)
    supervisor.wait(tid, 30)

    for messages in (collector.of(tid), batch_sink.of(tid)):
        for message in messages:
            assert json.loads(json.dumps(message)) == message
        hostile = next(m for m in messages if m["message"] == "hostile")
        assert isinstance(hostile["when"], str)
        assert hostile["when"].endswith("+00:00")
        assert hostile["amount"] == "1.5"
        assert isinstance(hostile["id"], str)
        assert sorted(hostile["tags"]) == ["a", "b"]
        assert hostile["path"] == "exports/sales.tmdl"
        assert hostile["1"] == "int key"
        assert hostile["null"] == "none key"
        assert isinstance(hostile["raw"], str)
        assert any(m["message"] == "ordinary" for m in messages)


def test_malformed_log_calls_arrive_as_text(make_supervisor, collector, task_id):
    supervisor = make_supervisor({"collector": collector})
    tid = task_id("malformed")
    supervisor.start(tid, jobs.log_malformed_records)
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.SUCCEEDED

    texts = collector.texts(tid)
    assert any("copied %d files (100%)" in text for text in texts)
    assert any("%s and %s" in text and "one" in text for text in texts)
    assert "config 1" in texts
    assert "100% done %s" in texts
    assert "after malformed" in texts


def test_closed_channel_handler_does_not_break(make_supervisor, collector, task_id):
    supervisor = make_supervisor({"collector": collector}, grace_period=2.0)
    tid = task_id("closedhandler")
    supervisor.start(tid, jobs.log_until_cancelled_with_handler)
    collector.wait_for(lambda: len(collector.of(tid)) >= 1)
    supervisor.cancel(tid)
    status = supervisor.wait(tid, 30)
    assert status.state is TaskState.CANCELLED
    assert status.signal != "SIGKILL"


def test_progress_rules_hold(make_supervisor, collector, task_id):
    supervisor = make_supervisor({"collector": collector})
    tid = task_id("progress")
    values = [10, 50, 30, 200, -5, "abc", math.nan, math.inf, None, True, "75", 99.9999]
    supervisor.start(tid, jobs.report_progress, args=(values,))
    supervisor.wait(tid, 30)

    messages = collector.of(tid)
    job_lines = [
        m for m in messages if m["event"] == "log" and m.get("source") != "supervisor"
    ]
    assert [m["progress"] for m in job_lines] == [
        10, 50, 50, 100, 100, None, None, 100, None, None, None, 100,
    ]  # fmt: skip
    reported = [m["progress"] for m in messages if m["progress"] is not None]
    assert reported == sorted(reported)
    assert all(0 <= value <= 100 for value in reported)
    ignored = [m for m in messages if m["message"].startswith("ignored progress value")]
    assert [m["message"].split(":")[0] for m in ignored] == [
        "ignored progress value 'abc'",
        "ignored progress value nan",
        "ignored progress value True",
        "ignored progress value '75'",
    ]
    assert all(m["message_type"] == "warning" for m in ignored)


def test_interleaved_tasks_arrive_in_order(make_supervisor, collector, task_id):
    second = jobs_sink = BatchCollector()
    third: list[dict] = []
    supervisor = make_supervisor(
        {"collector": collector, "batch": jobs_sink, "list": third.append},
        max_workers=2,
    )
    ids = [task_id("left"), task_id("right")]
    for tid in ids:
        supervisor.start(tid, jobs.log_messages, args=(10_000, 10, tid))
    for tid in ids:
        assert supervisor.wait(tid, 60).state is TaskState.SUCCEEDED

    for tid in ids:
        by_sink = {
            "collector": collector.of(tid),
            "batch": second.of(tid),
            "list": [m for m in third if m["task_id"] == tid],
        }
        for messages in by_sink.values():
            assert_complete_stream(messages)
            texts = [m["message"] for m in messages if m["event"] == "log"]
            assert texts == [f"{tid}{i:06d} " + "x" * 10 for i in range(10_000)]


def test_garbage_on_pipe_is_skipped(make_supervisor, collector, task_id):
    supervisor = make_supervisor({"collector": collector}, max_workers=2)
    garbage, neighbour = task_id("garbage"), task_id("neighbour")
    supervisor.start(garbage, jobs.write_garbage_frames)
    supervisor.start(neighbour, jobs.log_messages, args=(1000,))

    assert supervisor.wait(garbage, 60).state is TaskState.SUCCEEDED
    assert supervisor.wait(neighbour, 60).state is TaskState.SUCCEEDED
    texts = collector.texts(garbage)
    assert texts[0] == "before garbage"
    assert "after garbage" in texts
    warnings = [
        m["message"] for m in collector.of(garbage) if m.get("source") == "supervisor"
    ]
    assert any("not valid JSON objects of a known kind" in w for w in warnings)
    assert any("longer than" in w for w in warnings)
    assert len(collector.texts(neighbour)) == 1000
