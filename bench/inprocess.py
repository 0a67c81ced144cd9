"""The baseline: the job runs in a thread of the web process and sends every
message itself, the way BIMigrator's ``websocket_client`` does.

Each call builds the message, sends it with
``async_to_sync(channel_layer.group_send)`` to ``migration_<task_id>`` as a
``log_message`` event, and stores it with ``MigrationLog.objects.create``, all
inline in the job's thread. The messages carry the same fields as the product's
(``seq``, ``event``, ``progress``, ...) so the same consumer and the same client
read both.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import close_old_connections, connection
from django.utils import timezone

from bench.jobs import run_timed
from django_integration.models import MigrationLog, MigrationTask

logger = logging.getLogger(__name__)

TARGET = "bench.inprocess:InProcessJob"


class InProcessJob:
    """One task's stream sent and stored inline, message by message."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.group = f"migration_{task_id}"
        self.last_seq = 0

    def emit(
        self,
        message: str,
        *,
        event: str = "log",
        progress: int | None = None,
        message_type: str = "info",
        options: dict[str, Any] | None = None,
    ) -> None:
        now = timezone.now()
        data = {
            **(options or {}),
            "task_id": self.task_id,
            "seq": self.last_seq + 1,
            "event": event,
            "message": message,
            "message_type": message_type,
            "progress": progress,
            "timestamp": now.isoformat(),
        }
        channel_layer = get_channel_layer()
        async_to_sync(channel_layer.group_send)(
            self.group, {"type": "log_message", "message": data}
        )
        MigrationLog.objects.create(
            task_id=self.task_id,
            seq=data["seq"],
            event=event,
            message=message,
            message_type=message_type,
            progress=progress,
            timestamp=now,
            options=options or {},
        )
        self.last_seq += 1

    def logging_helper(
        self,
        message: str,
        progress: int | None = None,
        message_type: str = "info",
        options: dict[str, Any] | None = None,
    ) -> None:
        self.emit(
            message, progress=progress, message_type=message_type, options=options
        )


def create_task(task_id: str, owner: Any) -> None:
    """Record the task, so the consumer lets its owner watch it."""
    MigrationTask.objects.create(
        task_id=task_id,
        owner=owner,
        target=TARGET,
        state="running",
        started_at=timezone.now(),
    )


def start(task_id: str, job_kwargs: dict[str, Any]) -> threading.Thread:
    """Run the job in a new thread of this process, as the baseline does."""
    thread = threading.Thread(
        target=_run, args=(task_id, job_kwargs), name=f"inprocess-{task_id}"
    )
    thread.daemon = True
    thread.start()
    return thread


def _run(task_id: str, job_kwargs: dict[str, Any]) -> None:
    job = InProcessJob(task_id)
    state = "succeeded"
    try:
        job.emit("started", event="started", progress=0)
        run_timed(job.logging_helper, **job_kwargs)
    except Exception:
        logger.exception("In-process job %s failed", task_id)
        state = "failed"
    finally:
        _finish(job, state)
        close_old_connections()
        connection.close()


def _finish(job: InProcessJob, state: str) -> None:
    job.emit("finished", event="finished", progress=100, options={"state": state})
    MigrationTask.objects.filter(task_id=job.task_id).update(
        state=state,
        progress=100,
        message_count=job.last_seq,
        finished_at=timezone.now(),
    )
