"""The Supervisor API: input checks, the queue, wait, shutdown, log lines."""

from __future__ import annotations

import logging
import threading

import pytest

from supervisor import (
    InvalidTargetError,
    InvalidTaskIdError,
    Supervisor,
    SupervisorClosedError,
    TaskAlreadyActiveError,
    TaskState,
    UnknownTaskError,
    UnpicklableArgumentsError,
)

from . import jobs

pytestmark = pytest.mark.timeout(60)


def nested_target() -> None:
    def inner() -> None:
        pass

    return inner  # type: ignore[return-value]


@pytest.fixture
def supervisor(make_supervisor):
    return make_supervisor(max_workers=1)


@pytest.mark.parametrize("bad_id", ["", "a b", "x" * 65, "../x", None])
def test_start_rejects_invalid_task_id(supervisor, bad_id):
    with pytest.raises(InvalidTaskIdError, match="A-Z, a-z, 0-9") as raised:
        supervisor.start(bad_id, jobs.return_value)
    assert repr(bad_id) in str(raised.value)
    assert supervisor.active_tasks() == []


@pytest.mark.parametrize(
    ("target", "error", "text"),
    [
        (lambda: 1, InvalidTargetError, "lambdas and nested functions"),
        (nested_target(), InvalidTargetError, "lambdas and nested functions"),
        (Supervisor.__init__.__get__(object()), InvalidTargetError, "bound methods"),
        ("no.such.module:f", InvalidTargetError, "cannot be imported"),
        ("os:no_such_function", InvalidTargetError, "has no attribute"),
        ("os.path", InvalidTargetError, "expected 'package.module:function'"),
        ("os:sep", InvalidTargetError, "not a callable"),
    ],
)
def test_start_rejects_invalid_target(supervisor, task_id, target, error, text):
    with pytest.raises(error, match=text):
        supervisor.start(task_id("badtarget"), target)
    assert supervisor.active_tasks() == []


def test_start_rejects_unpicklable_argument(supervisor, task_id):
    with pytest.raises(UnpicklableArgumentsError, match="argument 0") as raised:
        supervisor.start(task_id("lock"), jobs.return_value, args=(threading.Lock(),))
    assert raised.value.__cause__ is not None
    with pytest.raises(UnpicklableArgumentsError, match="keyword argument 'value'"):
        supervisor.start(
            task_id("lock"), jobs.return_value, kwargs={"value": threading.Lock()}
        )
    assert supervisor.active_tasks() == []


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"timeout": -1}, "invalid timeout -1"),
        ({"timeout": 0}, "invalid timeout 0"),
        ({"total_steps": 0}, "invalid total_steps 0"),
        ({"total_steps": True}, "invalid total_steps True"),
    ],
)
def test_start_rejects_invalid_numbers(supervisor, task_id, options, text):
    with pytest.raises(ValueError, match=text):
        supervisor.start(task_id("numbers"), jobs.return_value, **options)
    assert supervisor.active_tasks() == []


def test_start_rejects_active_duplicate(supervisor, task_id):
    tid = task_id("duplicate")
    supervisor.start(tid, jobs.sleep, args=(30,))
    with pytest.raises(TaskAlreadyActiveError, match=tid):
        supervisor.start(tid, jobs.return_value)
    supervisor.cancel(tid)
    supervisor.wait(tid, 30)
    supervisor.start(tid, jobs.return_value)
    assert supervisor.wait(tid, 30).state is TaskState.SUCCEEDED


def test_start_accepts_import_path(supervisor, task_id):
    tid = task_id("importpath")
    supervisor.start(tid, "tests.supervisor.jobs:return_value")
    assert supervisor.wait(tid, 30).state is TaskState.SUCCEEDED


def test_fork_start_method_is_rejected():
    with pytest.raises(ValueError, match="deadlock"):
        Supervisor(start_method="fork")


def test_queue_runs_tasks_in_order(make_supervisor, collector, task_id):
    supervisor = make_supervisor({"collector": collector}, max_workers=1)
    ids = [task_id(f"fifo{index}") for index in range(3)]
    for tid in ids:
        status = supervisor.start(tid, jobs.return_value)
        assert status.state is TaskState.QUEUED
    statuses = [supervisor.wait(tid, 30) for tid in ids]
    assert [s.state for s in statuses] == [TaskState.SUCCEEDED] * 3
    started = [s.started_at for s in statuses]
    finished = [s.finished_at for s in statuses]
    assert started[1] >= finished[0]
    assert started[2] >= finished[1]


def test_cancelled_queued_task_never_starts(make_supervisor, collector, task_id):
    supervisor = make_supervisor({"collector": collector}, max_workers=1)
    running, queued = task_id("busy"), task_id("waiting")
    supervisor.start(running, jobs.sleep, args=(30,))
    supervisor.start(queued, jobs.return_value)

    assert supervisor.cancel(queued) is True
    status = supervisor.wait(queued, 10)
    assert status.state is TaskState.CANCELLED
    assert status.pid is None
    assert status.started_at is None
    assert [m["event"] for m in collector.of(queued)] == ["finished"]
    supervisor.cancel(running)


def test_wait_times_out(supervisor, task_id):
    tid = task_id("waittimeout")
    supervisor.start(tid, jobs.sleep, args=(30,))
    with pytest.raises(TimeoutError, match=tid):
        supervisor.wait(tid, 0.2)
    supervisor.cancel(tid)


def test_status_of_unknown_task_raises(supervisor):
    with pytest.raises(UnknownTaskError, match="unknown task id 'nothing'"):
        supervisor.status("nothing")


def test_status_to_dict_is_json_safe(supervisor, task_id):
    tid = task_id("todict")
    supervisor.start(tid, jobs.raise_value_error)
    data = supervisor.wait(tid, 30).to_dict()
    assert data["state"] == "failed"
    assert data["error"]["type"] == "ValueError"
    assert data["finished_at"].endswith("+00:00")


def test_shutdown_twice_then_start_raises(task_id):
    supervisor = Supervisor(grace_period=0.5)
    supervisor.start(task_id("shutdown"), jobs.sleep, args=(30,))
    supervisor.shutdown()
    supervisor.shutdown()
    assert supervisor.active_tasks() == []
    with pytest.raises(SupervisorClosedError):
        supervisor.start(task_id("late"), jobs.return_value)


def test_shutdown_without_cancel_waits_for_tasks(task_id, collector):
    supervisor = Supervisor({"collector": collector}, max_workers=1)
    ids = [task_id("drain1"), task_id("drain2")]
    for tid in ids:
        supervisor.start(tid, jobs.sleep, args=(0.2,))
    supervisor.shutdown(cancel_running=False)
    assert [supervisor.status(tid).state for tid in ids] == [TaskState.SUCCEEDED] * 2


def test_log_lines_for_one_task(make_supervisor, collector, task_id, caplog):
    supervisor = make_supervisor({"collector": collector}, grace_period=5.0)
    tid = task_id("logs")
    target = "tests.supervisor.jobs:sleep"
    with caplog.at_level(logging.INFO, logger="supervisor"):
        supervisor.start(tid, target, args=(30,))
        collector.wait_for(lambda: len(collector.of(tid)) >= 1)
        supervisor.cancel(tid)
        status = supervisor.wait(tid, 30)

    pid = status.pid
    assert status.signal == "SIGTERM"
    assert [r for r in caplog.record_tuples if tid in r[2]] == [
        ("supervisor._supervisor", logging.INFO, f"Task {tid} queued: target {target}"),
        (
            "supervisor._drain",
            logging.INFO,
            f"Task {tid} started: pid {pid}, target {target}",
        ),
        (
            "supervisor._supervisor",
            logging.INFO,
            f"Task {tid} cancel requested while running",
        ),
        (
            "supervisor._drain",
            logging.INFO,
            f"Task {tid} cancelled; sending SIGTERM to process group {pid}",
        ),
        (
            "supervisor._drain",
            logging.INFO,
            f"Task {tid} cancelled: exit code None, signal SIGTERM",
        ),
    ]
