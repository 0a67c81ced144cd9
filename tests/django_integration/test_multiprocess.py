"""Several web processes: heartbeats, lost tasks, and cancels across processes."""

from __future__ import annotations

import contextlib
import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_integration import cancel_migration, get_status, start_migration
from django_integration import runtime as runtime_module
from django_integration.models import (
    MigrationLog,
    MigrationTask,
    SupervisorProcess,
    TaskState,
)
from django_integration.runtime import mark_lost_tasks
from tests import services
from tests.django_integration.conftest import wait_for
from tests.django_integration.web_helpers import WATCH, make_user

JOBS = "tests.django_integration.jobs"
REPO_ROOT = Path(__file__).resolve().parents[2]
FAST_HEARTBEAT = {
    "HEARTBEAT_INTERVAL": 0.2,
    "CANCEL_POLL_INTERVAL": 0.1,
    "LOST_AFTER": 1.0,
}


def add_process(process_id, seconds_ago):
    hostname, pid, _ = process_id.split(":")
    return SupervisorProcess.objects.create(
        process_id=process_id,
        hostname=hostname,
        pid=int(pid),
        heartbeat_at=timezone.now() - datetime.timedelta(seconds=seconds_ago),
    )


def add_task(task_id, process_id, state=TaskState.RUNNING, logs=3):
    task = MigrationTask.objects.create(
        task_id=task_id, target="jobs:run", state=state, supervised_by=process_id
    )
    MigrationLog.objects.bulk_create(
        MigrationLog(
            task=task, seq=seq, event="log", message=f"m{seq}", timestamp=timezone.now()
        )
        for seq in range(1, logs + 1)
    )
    return task


@pytest.mark.django_db
def test_mark_lost_tasks_of_silent_process():
    add_process("ghost:1:dead", seconds_ago=60)
    add_process("alive:2:beat", seconds_ago=1)
    add_task("ghost-running", "ghost:1:dead")
    add_task("ghost-queued", "ghost:1:dead", state=TaskState.QUEUED)
    add_task("ghost-done", "ghost:1:dead", state=TaskState.SUCCEEDED)
    add_task("alive-running", "alive:2:beat")
    add_task("vanished-running", "gone:3:none")

    assert mark_lost_tasks(15) == 3

    states = dict(MigrationTask.objects.values_list("task_id", "state"))
    assert states == {
        "ghost-running": "lost",
        "ghost-queued": "lost",
        "ghost-done": "succeeded",
        "alive-running": "running",
        "vanished-running": "lost",
    }
    lost = MigrationTask.objects.get(task_id="ghost-running")
    assert lost.finished_at is not None
    assert "heartbeat" in lost.error_message
    assert list(lost.logs.values_list("seq", flat=True)) == [1, 2, 3, 4]
    assert lost.message_count == 4
    assert set(SupervisorProcess.objects.values_list("process_id", flat=True)) == {
        "alive:2:beat"
    }


@pytest.mark.django_db
def test_lost_task_gets_finished_message():
    add_process("ghost:7:dead", seconds_ago=60)
    task = add_task("lost-ended", "ghost:7:dead")
    MigrationTask.objects.filter(pk=task.pk).update(progress=40, message_count=3)
    sent = []

    assert mark_lost_tasks(15, notify=sent.append) == 1

    finished = MigrationLog.objects.get(task_id="lost-ended", seq=4).to_message()
    assert finished["event"] == "finished"
    assert finished["state"] == "lost"
    assert finished["message_type"] == "error"
    assert finished["progress"] == 40
    assert finished["error"]["type"] == "lost"
    assert "ghost:7:dead" in finished["message"]
    assert "heartbeats" in finished["message"]
    assert sent == [finished]
    assert get_status("lost-ended").message_count == 4


@pytest.mark.django_db
def test_lost_finished_skips_unstored_seqs():
    """Seqs the stream carried but the saver never stored are not reused."""
    add_process("ghost:8:dead", seconds_ago=60)
    task = add_task("lost-behind", "ghost:8:dead")
    MigrationTask.objects.filter(pk=task.pk).update(message_count=9)

    mark_lost_tasks(15)

    assert list(task.logs.values_list("seq", flat=True)) == [1, 2, 3, 10]


@pytest.mark.django_db
def test_task_marked_lost_once():
    add_process("ghost:9:dead", seconds_ago=60)
    add_task("lost-once", "ghost:9:dead")
    sent = []

    assert mark_lost_tasks(15, notify=sent.append) == 1
    add_process("ghost:9:dead", seconds_ago=60)
    assert mark_lost_tasks(15, notify=sent.append) == 0

    finished = MigrationLog.objects.filter(task_id="lost-once", event="finished")
    assert finished.count() == 1
    assert len(sent) == 1


@pytest.mark.django_db
def test_lost_update_conditional_on_process():
    """The update is conditional on the process that supervised the task."""
    add_process("ghost:10:dead", seconds_ago=60)
    add_task("moved", "ghost:10:dead")

    assert runtime_module._mark_lost("moved", "other:11:x", 15, timezone.now()) is None

    assert MigrationTask.objects.get(task_id="moved").state == TaskState.RUNNING
    assert not MigrationLog.objects.filter(task_id="moved", event="finished").exists()


def test_status_read_marks_lost(runtime):
    """A process that started no task still marks lost when a status is read."""
    add_process("killed:12:old", seconds_ago=60)
    add_task("orphan", "killed:12:old")
    sent = []
    runtime.set_sink_function("websocket", sent.append)

    status = get_status("orphan")

    assert status.state == "lost"
    assert status.error["type"] == "lost"
    assert runtime.local_supervisor() is None
    assert [message["seq"] for message in sent] == [4]
    assert sent[0]["state"] == "lost"


def test_task_list_marks_lost(runtime, client):
    add_process("killed:13:old", seconds_ago=60)
    add_task("listed", "killed:13:old")
    client.force_login(make_user(WATCH))

    response = client.get(reverse("django_integration:task_list"))

    assert response.status_code == 200
    assert MigrationTask.objects.get(task_id="listed").state == TaskState.LOST


def test_lost_check_rate_limited(runtime):
    with override_settings(
        MIGRATION_SUPERVISOR={"HEARTBEAT_INTERVAL": 600, "LOST_AFTER": 1200}
    ):
        add_process("fresh:14:new", seconds_ago=0)
        add_task("checked-late", "fresh:14:new")
        assert get_status("checked-late").state == "running"
        SupervisorProcess.objects.filter(process_id="fresh:14:new").update(
            heartbeat_at=timezone.now() - datetime.timedelta(seconds=3600)
        )

        assert get_status("checked-late").state == "running"
        runtime.reset()
        assert get_status("checked-late").state == "lost"


@pytest.mark.django_db
def test_mark_lost_skips_rows_without_process():
    MigrationTask.objects.create(task_id="direct", state=TaskState.RUNNING)
    assert mark_lost_tasks(15) == 0
    assert MigrationTask.objects.get(task_id="direct").state == TaskState.RUNNING


def test_process_start_marks_lost(runtime):
    add_process("crashed:4:old", seconds_ago=120)
    add_task("left-behind", "crashed:4:old")

    runtime.supervisor()

    assert get_status("left-behind").state == "lost"
    own = SupervisorProcess.objects.get(process_id=runtime.process_id)
    assert own.pid == os.getpid()


def test_heartbeat_marks_lost_later(runtime):
    with override_settings(MIGRATION_SUPERVISOR=FAST_HEARTBEAT):
        runtime.supervisor()
    first_beat = SupervisorProcess.objects.get(process_id=runtime.process_id)
    add_process("stalled:5:old", seconds_ago=0)
    add_task("stalled-task", "stalled:5:old")

    wait_for(lambda: get_status("stalled-task").state == "lost")
    latest = SupervisorProcess.objects.get(process_id=runtime.process_id)
    assert latest.heartbeat_at > first_beat.heartbeat_at


def test_heartbeat_row_removed_at_shutdown(runtime):
    runtime.supervisor()
    process_id = runtime.process_id
    assert SupervisorProcess.objects.filter(process_id=process_id).exists()
    runtime.shutdown()
    assert not SupervisorProcess.objects.filter(process_id=process_id).exists()


def test_cancel_request_in_database_picked_up(runtime, unique_id):
    """A cancel stored by another process reaches the supervising one."""
    with override_settings(MIGRATION_SUPERVISOR=FAST_HEARTBEAT):
        start_migration(unique_id, f"{JOBS}:sleep_forever")
    wait_for(lambda: MigrationLog.objects.filter(task_id=unique_id, seq=2).exists())

    MigrationTask.objects.filter(task_id=unique_id).update(
        cancel_requested_at=timezone.now()
    )

    runtime.supervisor().wait(unique_id, timeout=30)
    assert get_status(unique_id).state == "cancelled"


def test_cancel_of_other_process_task_recorded(runtime):
    add_process("other:6:live", seconds_ago=0)
    add_task("remote-task", "other:6:live")

    assert cancel_migration("remote-task") is True
    task = MigrationTask.objects.get(task_id="remote-task")
    assert task.cancel_requested_at is not None
    assert task.state == TaskState.RUNNING


@contextlib.contextmanager
def helper_process(*arguments):
    """Run the helper web process; kill and reap it however the test ends."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.settings",
        MIGRATION_TEST_BACKEND="services",
        MIGRATION_TEST_DATABASE_NAME=connection.settings_dict["NAME"],
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
        ),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.django_integration.helper_process", *arguments],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.services_backend
def test_cancel_across_processes(transactional_db, unique_id):
    services.require_postgres()

    with helper_process("start", unique_id) as starter:
        assert starter.stdout.readline().strip() == "started"
        wait_for(lambda: MigrationLog.objects.filter(task_id=unique_id, seq=2).exists())
        with helper_process("cancel", unique_id) as canceller:
            output, errors = canceller.communicate(timeout=60)
            assert canceller.returncode == 0, errors
        assert output.strip() == "True"

        final, errors = starter.communicate(timeout=60)
        assert starter.returncode == 0, errors

    assert final.strip() == "cancelled"
    task = MigrationTask.objects.get(task_id=unique_id)
    assert task.state == TaskState.CANCELLED
    assert task.cancel_requested_at is not None
    assert task.logs.last().event == "finished"
