"""The models: state choices, stream rows, and the guard on final outcomes."""

from __future__ import annotations

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

import supervisor
from django_integration.models import (
    MigrationLog,
    MigrationTask,
    SupervisorProcess,
    TaskState,
)

pytestmark = pytest.mark.django_db


def test_task_states_match_supervisor():
    assert set(TaskState.values) == {state.value for state in supervisor.TaskState}


def test_final_states():
    assert TaskState.final_values() == {
        "succeeded",
        "failed",
        "crashed",
        "cancelled",
        "timed_out",
        "lost",
    }


@pytest.mark.parametrize("task_id", ["", "a" * 65, "has space", "semi;colon", "é"])
def test_task_id_validator_rejects(task_id):
    task = MigrationTask(task_id=task_id, target="jobs:run")
    with pytest.raises(ValidationError) as excinfo:
        task.full_clean()
    assert "task_id" in excinfo.value.message_dict


def test_log_seq_unique_per_task():
    task = MigrationTask.objects.create(task_id="unique-seq")
    fields = {"event": "log", "message": "one", "timestamp": timezone.now()}
    MigrationLog.objects.create(task=task, seq=1, **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        MigrationLog.objects.create(task=task, seq=1, **fields)


def test_log_ordered_by_seq():
    task = MigrationTask.objects.create(task_id="ordered")
    now = timezone.now()
    for seq in (3, 1, 2):
        MigrationLog.objects.create(
            task=task, seq=seq, event="log", message=str(seq), timestamp=now
        )
    assert list(task.logs.values_list("seq", flat=True)) == [1, 2, 3]


def test_log_task_id_is_string_id():
    task = MigrationTask.objects.create(task_id="string-key")
    log = MigrationLog.objects.create(
        task=task, seq=1, event="log", timestamp=timezone.now()
    )
    assert log.task_id == "string-key"


def test_log_to_message_rebuilds_message():
    task = MigrationTask.objects.create(task_id="rebuild")
    moment = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    log = MigrationLog.objects.create(
        task=task,
        seq=7,
        event="finished",
        message="done",
        message_type="info",
        progress=100,
        timestamp=moment,
        options={"state": "succeeded", "exit_code": 0, "sheet": "Sales"},
    )
    assert log.to_message() == {
        "task_id": "rebuild",
        "seq": 7,
        "event": "finished",
        "message": "done",
        "message_type": "info",
        "progress": 100,
        "timestamp": "2025-01-02T03:04:05+00:00",
        "state": "succeeded",
        "exit_code": 0,
        "sheet": "Sales",
    }


def test_log_to_message_options_never_overwrite_fields():
    task = MigrationTask.objects.create(task_id="no-overwrite")
    log = MigrationLog.objects.create(
        task=task,
        seq=1,
        event="log",
        message="real",
        timestamp=timezone.now(),
        options={"message": "fake", "seq": 99},
    )
    message = log.to_message()
    assert message["message"] == "real"
    assert message["seq"] == 1


def test_task_permissions_exist():
    codenames = {codename for codename, _ in MigrationTask._meta.permissions}
    assert codenames == {
        "watch_any_migration",
        "cancel_any_migration",
        "choose_migration_target",
    }


def test_supervisor_process_staleness():
    now = timezone.now()
    process = SupervisorProcess(
        process_id="host:1:ab",
        hostname="host",
        pid=1,
        heartbeat_at=now - datetime.timedelta(seconds=20),
    )
    assert process.is_stale(15, now)
    assert not process.is_stale(30, now)
