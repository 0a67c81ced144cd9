"""The public API: start, cancel, status, and the sink and step setters."""

from __future__ import annotations

import json
import os
import threading

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import override_settings

import django_integration
from django_integration import (
    TaskAlreadyExistsError,
    TaskNotFoundError,
    cancel_migration,
    get_status,
    set_db_save_function,
    set_task_info,
    set_websocket_post_function,
    start_migration,
)
from django_integration.models import MigrationLog, MigrationTask, TaskState
from django_integration.runtime import Runtime
from django_integration.sinks import DatabaseSaver
from supervisor import InvalidTargetError, InvalidTaskIdError, UnpicklableArgumentsError
from tests.django_integration.conftest import wait_for

JOBS = "tests.django_integration.jobs"


def wait_final(runtime, task_id, timeout=60):
    """Wait until the supervisor delivered the task's end to every sink."""
    runtime.supervisor().wait(task_id, timeout=timeout)
    return MigrationTask.objects.get(task_id=task_id)


def stored_seqs(task_id):
    return list(
        MigrationLog.objects.filter(task_id=task_id).values_list("seq", flat=True)
    )


def test_import_needs_no_settings():
    import subprocess
    import sys

    code = "import django_integration; print(django_integration.__all__[0])"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "MigrationError"


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no_such_name"):
        django_integration.no_such_name  # noqa: B018


def test_start_stores_every_message(runtime, unique_id):
    user = get_user_model().objects.create_user("owner")
    task = start_migration(
        unique_id, f"{JOBS}:count_to", args=(200,), owner=user, timeout=60
    )
    assert task.state == TaskState.QUEUED
    assert task.owner == user
    assert task.arguments == {"args": [200], "kwargs": {}}
    assert task.supervised_by == runtime.process_id

    task = wait_final(runtime, unique_id)
    assert task.state == TaskState.SUCCEEDED
    assert task.progress == 100
    assert task.exit_code == 0
    assert task.message_count == 202
    assert stored_seqs(unique_id) == list(range(1, 203))
    lines = MigrationLog.objects.filter(task_id=unique_id, event="log")
    assert [log.message for log in lines] == [f"line {n}" for n in range(1, 201)]

    status = get_status(unique_id)
    assert status.state == "succeeded"
    assert status.progress == 100
    assert status.message_count == 202
    assert status.dropped == 0
    assert status.owner == "owner"
    assert status.started_at <= status.finished_at
    assert json.loads(json.dumps(status.to_dict()))["task_id"] == unique_id


def test_start_failure_stored(runtime, unique_id):
    start_migration(unique_id, f"{JOBS}:fail")
    task = wait_final(runtime, unique_id)
    assert task.state == TaskState.FAILED
    assert task.progress == 40
    assert task.error_type == "ValueError"
    assert task.error_message == "bad workbook"
    assert "raise ValueError" in task.traceback
    assert get_status(unique_id).error["type"] == "ValueError"


def test_hostile_options_stored_as_json(runtime, unique_id):
    start_migration(unique_id, f"{JOBS}:log_hostile_options")
    wait_final(runtime, unique_id)

    hostile = MigrationLog.objects.get(task_id=unique_id, message="hostile")
    options = hostile.options
    assert json.loads(json.dumps(options)) == options
    assert options["amount"] == "1.5"
    assert sorted(options["tags"]) == ["a", "b"]
    assert options["path"] == "exports/sales.tmdl"
    assert options["1"] == "int key"
    assert options["null"] == "none key"
    assert isinstance(options["when"], str)
    assert isinstance(options["raw"], str)
    assert MigrationLog.objects.filter(task_id=unique_id, message="ordinary").exists()


def test_arguments_stored_as_json_or_repr(runtime, unique_id):
    lock = threading.Lock()
    with pytest.raises(UnpicklableArgumentsError):
        start_migration(unique_id, f"{JOBS}:count_to", args=(lock,))
    assert not MigrationTask.objects.filter(task_id=unique_id).exists()

    class Opaque:
        def __repr__(self):
            return "<opaque>"

    from django_integration.api import json_or_repr

    assert json_or_repr(Opaque()) == "<opaque>"
    assert json_or_repr(float("nan")) == "nan"
    assert json_or_repr({"a": [1, 2]}) == {"a": [1, 2]}


def test_start_rejects_taken_id(runtime, unique_id):
    MigrationTask.objects.create(task_id=unique_id, state=TaskState.SUCCEEDED)
    with pytest.raises(TaskAlreadyExistsError, match=unique_id):
        start_migration(unique_id, f"{JOBS}:count_to", args=(1,))
    assert MigrationTask.objects.get(task_id=unique_id).state == TaskState.SUCCEEDED


@pytest.mark.parametrize("task_id", ["", "a b", "x" * 65, None])
def test_start_rejects_invalid_id(runtime, task_id):
    with pytest.raises(InvalidTaskIdError):
        start_migration(task_id, f"{JOBS}:count_to", args=(1,))
    assert MigrationTask.objects.count() == 0


@pytest.mark.parametrize(
    "target", [f"{JOBS}:missing", "no_such_module:run", lambda: None, 42]
)
def test_start_rejects_invalid_target(runtime, unique_id, target):
    with pytest.raises(InvalidTargetError):
        start_migration(unique_id, target)
    assert not MigrationTask.objects.filter(task_id=unique_id).exists()


def test_start_without_any_target(runtime, unique_id):
    with pytest.raises(ValueError, match="TARGET"):
        start_migration(unique_id)


def test_start_default_target(runtime, unique_id):
    target = f"{JOBS}:count_to"
    with override_settings(MIGRATION_SUPERVISOR={"TARGET": target}):
        task = start_migration(unique_id, args=(3,))
    assert task.target == target
    assert wait_final(runtime, unique_id).state == TaskState.SUCCEEDED


def test_start_inside_transaction_waits_for_commit(runtime, unique_id):
    from django.db import transaction

    with transaction.atomic():
        start_migration(unique_id, f"{JOBS}:count_to", args=(2,))
        assert runtime.supervisor().active_tasks() == []
    assert wait_final(runtime, unique_id).state == TaskState.SUCCEEDED


def test_set_task_info_gives_step_count(runtime, unique_id):
    set_task_info(unique_id, 4)
    task = start_migration(unique_id, f"{JOBS}:count_steps", args=(2,))
    assert task.total_steps == 4
    task = wait_final(runtime, unique_id)
    progress = list(
        MigrationLog.objects.filter(task_id=unique_id, event="log").values_list(
            "progress", flat=True
        )
    )
    assert progress == [25, 50]
    assert task.progress == 100


@pytest.mark.parametrize("steps", [0, -1, "3", 2.5, True])
def test_set_task_info_rejects_steps(steps):
    with pytest.raises(ValueError, match="total_steps"):
        set_task_info("steps", steps)


def test_cancel_running_task(runtime, unique_id):
    user = get_user_model().objects.create_user("canceller")
    start_migration(unique_id, f"{JOBS}:sleep_forever")
    wait_for(lambda: MigrationLog.objects.filter(task_id=unique_id, seq=2).exists())

    assert cancel_migration(unique_id, by=user) is True
    task = wait_final(runtime, unique_id)
    assert task.state == TaskState.CANCELLED
    assert task.cancelled_by == user
    assert task.cancel_requested_at is not None
    assert get_status(unique_id).cancelled_by == "canceller"


def test_cancel_finished_task_changes_nothing(runtime, unique_id):
    start_migration(unique_id, f"{JOBS}:count_to", args=(1,))
    before = wait_final(runtime, unique_id)
    user = get_user_model().objects.create_user("late")

    assert cancel_migration(unique_id, by=user) is False
    after = MigrationTask.objects.get(task_id=unique_id)
    assert after.state == TaskState.SUCCEEDED
    assert after.cancel_requested_at is None
    assert after.cancelled_by is None
    assert after.finished_at == before.finished_at


def test_cancel_stored_final_task(runtime, unique_id):
    MigrationTask.objects.create(task_id=unique_id, state=TaskState.FAILED)
    assert cancel_migration(unique_id) is False
    assert MigrationTask.objects.get(task_id=unique_id).cancel_requested_at is None


def test_cancel_unknown_task(runtime):
    assert cancel_migration("never-started") is False


def test_get_status_unknown_task(runtime):
    with pytest.raises(TaskNotFoundError, match="missing-task"):
        get_status("missing-task")


def test_replaced_sinks_run_on_supervisor_thread(runtime, unique_id):
    """Functions set for both sinks get every message, in the web process."""
    calls = {"websocket": [], "database": []}

    def recorder(name):
        def record(message):
            calls[name].append((message, os.getpid(), threading.get_ident()))

        return record

    set_websocket_post_function(recorder("websocket"))
    set_db_save_function(recorder("database"))
    start_migration(unique_id, f"{JOBS}:count_to", args=(5,))
    runtime.supervisor().wait(unique_id, timeout=60)

    job_pid = calls["websocket"][0][0]["pid"]
    for name, received in calls.items():
        assert [m["seq"] for m, _, _ in received] == list(range(1, 8)), name
        assert {pid for _, pid, _ in received} == {os.getpid()}
        assert job_pid != os.getpid()
        assert threading.get_ident() not in {ident for _, _, ident in received}
    assert MigrationLog.objects.filter(task_id=unique_id).count() == 0


def test_setting_none_restores_default(runtime, unique_id):
    received = []
    set_db_save_function(received.append)
    runtime.supervisor()
    set_db_save_function(None)
    start_migration(unique_id, f"{JOBS}:count_to", args=(2,))
    wait_final(runtime, unique_id)
    assert received == []
    assert stored_seqs(unique_id) == [1, 2, 3, 4]


class GatedSaver(DatabaseSaver):
    """The database saver, holding every batch until ``gate`` is set."""

    def __init__(self, gate: threading.Event, runtime: Runtime) -> None:
        super().__init__(dropped_count=runtime.dropped_count)
        self.gate = gate

    def send_batch(self, messages: list[dict]) -> None:
        self.gate.wait(30)
        super().send_batch(messages)


def test_dropped_messages_counted(runtime, unique_id):
    """The database saver over DB_MAX_PENDING loses messages: counted and announced.

    The bound is the database saver's only, so the WebSocket sink keeps them all.
    """
    gate = threading.Event()
    sent = []
    set_db_save_function(GatedSaver(gate, runtime))
    set_websocket_post_function(sent.append)
    with override_settings(MIGRATION_SUPERVISOR={"DB_MAX_PENDING": 10}):
        start_migration(unique_id, f"{JOBS}:flood_then_wait", args=(100,))
    try:
        wait_for(lambda: runtime.dropped_count(unique_id) > 0)
    finally:
        cancel_migration(unique_id)
        gate.set()
    task = wait_final(runtime, unique_id)

    warnings = MigrationLog.objects.filter(task_id=unique_id, message__contains="lost")
    assert [row.message_type for row in warnings][:1] == ["warning"]
    assert "database" in warnings[0].message
    assert task.dropped > 0
    assert get_status(unique_id).dropped == runtime.dropped_count(unique_id)
    assert [message["seq"] for message in sent] == list(range(1, len(sent) + 1))
    assert sent[-1]["event"] == "finished"
    assert sum(1 for m in sent if m["message"].startswith("flood ")) == 100


@pytest.mark.parametrize("setter", [set_websocket_post_function, set_db_save_function])
def test_setter_rejects_non_callable(setter):
    with pytest.raises(TypeError, match="callable"):
        setter("not a function")


def close_connection():
    connection.close()


async def test_async_twins(runtime, unique_id):
    try:
        task = await django_integration.astart_migration(
            unique_id, f"{JOBS}:count_to", args=(2,)
        )
        status = await django_integration.aget_status(unique_id)
        cancelled = await django_integration.acancel_migration("never-started")
    finally:
        # The twins run on asgiref's executor thread, whose connection would
        # otherwise stay open past the test.
        await sync_to_async(close_connection)()
    assert task.task_id == unique_id
    assert status.task_id == unique_id
    assert cancelled is False


def test_supervisor_created_lazily(runtime):
    assert runtime.local_supervisor() is None
    get_status  # noqa: B018
    assert connection.vendor in {"sqlite", "postgresql"}
