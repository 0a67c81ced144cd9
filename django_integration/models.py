"""Database records of migrations, their streams and the web processes running them."""

from __future__ import annotations

import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

#: A task id is also a Channels group name and a URL segment, so it stays short
#: and plain.
TASK_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

#: Keys every stream message carries. Its other keys are the job's options (and, on
#: ``finished``, the outcome), which are stored in ``MigrationLog.options``.
MESSAGE_FIELDS = (
    "task_id",
    "seq",
    "event",
    "message",
    "message_type",
    "progress",
    "timestamp",
)


class TaskState(models.TextChoices):
    """State of a task, with the values of the supervisor's ``TaskState``."""

    #: Recorded and handed to the supervisor, child not started yet.
    QUEUED = "queued", "Queued"
    #: The child process runs the job.
    RUNNING = "running", "Running"
    #: The job returned (or exited with code 0).
    SUCCEEDED = "succeeded", "Succeeded"
    #: The job raised, or exited with a non-zero code.
    FAILED = "failed", "Failed"
    #: The child died without reporting: a signal or ``os._exit``.
    CRASHED = "crashed", "Crashed"
    #: Someone cancelled the task.
    CANCELLED = "cancelled", "Cancelled"
    #: The task ran longer than its timeout.
    TIMED_OUT = "timed_out", "Timed out"
    #: The web process supervising the task stopped sending heartbeats.
    LOST = "lost", "Lost"

    @classmethod
    def final_values(cls) -> frozenset[str]:
        """Return the states a task never leaves."""
        return frozenset(cls.values) - {cls.QUEUED.value, cls.RUNNING.value}


class MessageEvent(models.TextChoices):
    STARTED = "started", "Started"
    LOG = "log", "Log"
    FINISHED = "finished", "Finished"


class MessageType(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class MigrationTask(models.Model):
    """One run of a migration job: what was asked, who asked, and how it ended."""

    task_id = models.CharField(
        max_length=64,
        unique=True,
        validators=[RegexValidator(TASK_ID_PATTERN)],
        help_text="Letters, digits, '_' and '-', at most 64 characters.",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="migration_tasks",
    )
    target = models.CharField(
        max_length=255, help_text="Import path of the job, 'package.module:function'."
    )
    arguments = models.JSONField(
        default=dict,
        blank=True,
        help_text="The job's args and kwargs; values JSON cannot hold are stored "
        "as their repr.",
    )
    total_steps = models.PositiveIntegerField(null=True, blank=True)
    state = models.CharField(
        max_length=16, choices=TaskState.choices, default=TaskState.QUEUED
    )
    progress = models.PositiveSmallIntegerField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    signal = models.CharField(
        max_length=16, blank=True, help_text="Name of the signal that ended the child."
    )
    error_type = models.CharField(max_length=255, blank=True)
    error_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    message_count = models.PositiveIntegerField(
        default=0, help_text="Messages the stream carried."
    )
    dropped = models.PositiveIntegerField(
        default=0, help_text="Messages a sink gave up on or could not hold."
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    supervised_by = models.CharField(
        max_length=255,
        blank=True,
        help_text="The web process running the task, as hostname:pid:start-token.",
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        permissions: ClassVar[list[tuple[str, str]]] = [
            ("watch_any_migration", "Can watch any migration"),
            ("cancel_any_migration", "Can cancel any migration"),
            # The target is code the server runs, so choosing it needs a grant.
            ("choose_migration_target", "Can choose the job a migration runs"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["supervised_by", "state"], name="migrationtask_supervisor_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in TaskState.final_values()


class MigrationLog(models.Model):
    """One message of a task's stream, as every sink received it."""

    # to_field makes ``log.task_id`` the task's string id, the same name the
    # stream messages use, and lets the saver insert rows without a lookup.
    task = models.ForeignKey(
        MigrationTask,
        to_field="task_id",
        db_column="task_id",
        on_delete=models.CASCADE,
        related_name="logs",
    )
    seq = models.PositiveIntegerField()
    event = models.CharField(max_length=16, choices=MessageEvent.choices)
    message = models.TextField(blank=True)
    message_type = models.CharField(
        max_length=16, choices=MessageType.choices, default=MessageType.INFO
    )
    progress = models.PositiveSmallIntegerField(null=True, blank=True)
    timestamp = models.DateTimeField()
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="The message's other keys: the job's options, and on 'finished' "
        "the outcome.",
    )

    class Meta:
        ordering: ClassVar[list[str]] = ["task_id", "seq"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["task", "seq"], name="migrationlog_unique_task_seq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} #{self.seq} {self.event}"

    def to_message(self) -> dict[str, Any]:
        """Rebuild the stream message this row was stored from."""
        message: dict[str, Any] = dict(self.options)
        message.update(
            task_id=self.task_id,
            seq=self.seq,
            event=self.event,
            message=self.message,
            message_type=self.message_type,
            progress=self.progress,
            timestamp=self.timestamp.isoformat(),
        )
        return message


class SupervisorProcess(models.Model):
    """A web process that supervises tasks, alive while its heartbeat is recent."""

    process_id = models.CharField(
        max_length=255, unique=True, help_text="hostname:pid:start-token"
    )
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-heartbeat_at"]
        verbose_name_plural = "supervisor processes"

    def __str__(self) -> str:
        return self.process_id

    def is_stale(self, lost_after: float, now: datetime.datetime | None = None) -> bool:
        """Tell whether the last heartbeat is older than ``lost_after`` seconds."""
        now = now or timezone.now()
        return now - self.heartbeat_at > datetime.timedelta(seconds=lost_after)
