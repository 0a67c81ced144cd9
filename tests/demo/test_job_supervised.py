"""The conversion job run by the supervisor in a child process."""

from __future__ import annotations

import threading
import time

import pytest

from supervisor import Supervisor, TaskState

TARGET = "demo.tableau.job:convert_workbook"


class Collector:
    """A sink that keeps every message it receives."""

    def __init__(self):
        self.messages = []
        self._lock = threading.Lock()

    def __call__(self, message):
        with self._lock:
            self.messages.append(dict(message))


@pytest.fixture
def supervised():
    collector = Collector()
    with Supervisor({"collect": collector}, grace_period=2.0) as supervisor:
        yield supervisor, collector


def test_sample_succeeds_with_table_messages(
    supervised, sample_path, tmp_path, unique_id
):
    supervisor, collector = supervised
    supervisor.start(unique_id, TARGET, args=(str(sample_path), str(tmp_path / "out")))
    status = supervisor.wait(unique_id, timeout=60)

    assert status.state is TaskState.SUCCEEDED
    assert status.progress == 100
    definition = tmp_path / "out" / "small-sales.SemanticModel" / "definition"
    assert (definition / "tables" / "Orders.tmdl").is_file()
    messages = [m for m in collector.messages if m["task_id"] == unique_id]
    texts = [m["message"] for m in messages]
    for table, columns in [
        ("Parameters", 0),
        ("Orders", 7),
        ("Customers", 3),
        ("Products", 3),
    ]:
        assert f"Table '{table}': {columns} columns" in texts
    assert "Measure 'Total Sales' = SUM('Orders'[Sales])" in texts
    warnings = [m for m in messages if m["message_type"] == "warning"]
    assert len(warnings) == 1
    assert "'Running Sales'" in warnings[0]["message"]
    progress = [m["progress"] for m in messages if m["progress"] is not None]
    assert progress == sorted(progress)
    assert len(set(progress)) >= 5
    assert messages[-1]["event"] == "finished"
    assert messages[-1]["progress"] == 100
    assert texts[-2].endswith("2 relationships, 1 warning")
    assert "Wrote 8 files to small-sales.SemanticModel" in texts


def test_log_lines_small_and_relative(supervised, sample_path, tmp_path, unique_id):
    """Log lines name no server path, and their options are a step and counts."""
    supervisor, collector = supervised
    supervisor.start(unique_id, TARGET, args=(str(sample_path), str(tmp_path / "out")))
    assert supervisor.wait(unique_id, timeout=60).state is TaskState.SUCCEEDED

    logs = [
        m
        for m in collector.messages
        if m["task_id"] == unique_id and m["event"] == "log"
    ]
    standard = {"task_id", "seq", "event", "message", "message_type", "progress"}
    for message in logs:
        assert str(tmp_path) not in message["message"]
        options = {k: v for k, v in message.items() if k not in standard}
        options.pop("timestamp")
        assert isinstance(options.pop("step"), str)
        assert all(isinstance(v, (int, str)) for v in options.values()), options
        assert len(repr(options)) < 80, options


def test_step_delay_allows_cancel_midway(supervised, sample_path, tmp_path, unique_id):
    supervisor, collector = supervised
    output = tmp_path / "out"
    supervisor.start(
        unique_id,
        TARGET,
        args=(str(sample_path), str(output)),
        kwargs={"step_delay": 1.0},
    )
    deadline = time.monotonic() + 30
    while not any(
        m["task_id"] == unique_id and m["message"].startswith("Table ")
        for m in list(collector.messages)
    ):
        assert time.monotonic() < deadline, "no table step logged in 30 s"
        time.sleep(0.05)
    assert supervisor.cancel(unique_id)
    status = supervisor.wait(unique_id, timeout=60)

    assert status.state is TaskState.CANCELLED
    assert 0 < status.progress < 100
    assert not (output / "small-sales.SemanticModel").exists()


def test_bad_file_fails_with_message(supervised, tmp_path, unique_id):
    supervisor, collector = supervised
    bad = tmp_path / "notes.twb"
    bad.write_text("meeting notes, not a workbook")
    supervisor.start(unique_id, TARGET, args=(str(bad), str(tmp_path / "out")))
    status = supervisor.wait(unique_id, timeout=60)

    assert status.state is TaskState.FAILED
    assert status.error is not None
    assert status.error.type == "demo.tableau.errors.WorkbookError"
    assert status.error.message == (
        "'notes.twb' is not well-formed XML: syntax error: line 1, column 0"
    )
    assert not (tmp_path / "out").exists()
    finished = [m for m in collector.messages if m["event"] == "finished"]
    assert finished[-1]["state"] == "failed"
