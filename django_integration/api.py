"""The public functions: start, cancel and read migrations, and replace the sinks.

Each setter is a one-line delegation to the process's ``Runtime``. The state of
a task is read from the database, so ``get_status`` works in every web process
and after a restart.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from django_integration import conf
from django_integration.exceptions import TaskAlreadyExistsError, TaskNotFoundError
from django_integration.models import MigrationTask, TaskState
from django_integration.runtime import DATABASE_SINK, WEBSOCKET_SINK, get_runtime

logger = logging.getLogger(__name__)

MessageFunction = Callable[[dict[str, Any]], object]

#: Characters of an argument's repr kept in ``MigrationTask.arguments``.
MAX_ARGUMENT_REPR = 10_000


@dataclasses.dataclass(frozen=True)
class MigrationStatus:
    """A task as the database stores it."""

    task_id: str
    state: str
    progress: int | None
    exit_code: int | None
    signal: str | None
    #: ``{"type", "message", "traceback"}`` for a failed, crashed or lost task.
    error: dict[str, str] | None
    created_at: datetime.datetime
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    message_count: int
    dropped: int
    owner: str | None
    cancelled_by: str | None
    cancel_requested_at: datetime.datetime | None
    target: str

    @property
    def is_final(self) -> bool:
        return self.state in TaskState.final_values()

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as JSON-safe values (ISO 8601 strings for times)."""
        values = dataclasses.asdict(self)
        for key, value in values.items():
            if isinstance(value, datetime.datetime):
                values[key] = value.isoformat()
        return values

    @classmethod
    def from_task(cls, task: MigrationTask) -> MigrationStatus:
        error = None
        if task.error_type or task.error_message or task.traceback:
            error = {
                "type": task.error_type,
                "message": task.error_message,
                "traceback": task.traceback,
            }
        return cls(
            task_id=task.task_id,
            state=task.state,
            progress=task.progress,
            exit_code=task.exit_code,
            signal=task.signal or None,
            error=error,
            created_at=task.created_at,
            started_at=task.started_at,
            finished_at=task.finished_at,
            message_count=task.message_count,
            dropped=task.dropped,
            owner=_username(task.owner),
            cancelled_by=_username(task.cancelled_by),
            cancel_requested_at=task.cancel_requested_at,
            target=task.target,
        )


def start_migration(
    task_id: str,
    target: Callable[..., Any] | str | None = None,
    *,
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    owner: Any = None,
    total_steps: int | None = None,
    timeout: float | None = None,
) -> MigrationTask:
    """Record a task and start it in this process's supervisor; return its row at once.

    ``target`` defaults to ``MIGRATION_SUPERVISOR["TARGET"]``, ``total_steps`` to
    the count given to ``set_task_info`` and ``timeout`` to
    ``MIGRATION_SUPERVISOR["TIMEOUT"]``. Inside a transaction the child starts
    when the transaction commits, so the sinks find the task's row.

    Raises the supervisor's ``InvalidTaskIdError``, ``InvalidTargetError`` or
    ``UnpicklableArgumentsError`` for bad input, and ``TaskAlreadyExistsError``
    when the database already contains a task with this id.
    """
    from supervisor import _validation

    settings = conf.get_settings()
    runtime = get_runtime()
    _validation.validate_task_id(task_id)
    target_path = _validation.resolve_target(_default_target(target, settings))
    job_args, job_kwargs = _validation.validate_arguments(tuple(args), kwargs or {})
    if total_steps is None:
        total_steps = runtime.pop_total_steps(task_id)
    total_steps = _validation.validate_total_steps(total_steps)
    timeout = _validation.validate_timeout(
        settings.timeout if timeout is None else timeout
    )

    supervisor = runtime.supervisor()
    task = _create_task(
        task_id,
        target_path,
        job_args,
        job_kwargs,
        owner=owner,
        total_steps=total_steps,
        process_id=runtime.process_id,
    )

    def start() -> None:
        try:
            supervisor.start(
                task_id,
                target_path,
                args=job_args,
                kwargs=job_kwargs,
                total_steps=total_steps,
                timeout=timeout,
            )
        except BaseException:
            MigrationTask.objects.filter(pk=task.pk).delete()
            raise
        logger.info("task %s: started %s", task_id, target_path)

    transaction.on_commit(start)
    return task


def cancel_migration(task_id: str, by: Any = None) -> bool:
    """Cancel a queued or running task, wherever it runs; return whether one was.

    A task supervised here is cancelled at once. For a task of another web
    process the request is stored on its row, and that process's heartbeat
    thread cancels it within ``CANCEL_POLL_INTERVAL`` seconds. A task that has
    ended, or is unknown, returns False and changes nothing.
    """
    from supervisor import UnknownTaskError, _validation

    _validation.validate_task_id(task_id)
    local = get_runtime().local_supervisor()
    local_status = None
    if local is not None:
        try:
            local_status = local.status(task_id)
        except UnknownTaskError:
            local_status = None
    if local_status is not None and local_status.state.is_final:
        return False

    requested = _record_cancel_request(task_id, _user_or_none(by))
    if local_status is not None:
        logger.info("task %s: cancel requested by %s", task_id, by)
        return bool(local.cancel(task_id)) or requested
    if requested:
        logger.info("task %s: cancel request stored for its web process", task_id)
    return requested


def get_status(task_id: str) -> MigrationStatus:
    """Return the task's stored status; raise TaskNotFoundError for an unknown id.

    Tasks whose web process stopped sending heartbeats are marked lost first,
    so the returned state is correct even where no process has a heartbeat
    thread.
    """
    get_runtime().check_lost_tasks()
    try:
        task = MigrationTask.objects.select_related("owner", "cancelled_by").get(
            task_id=task_id
        )
    except MigrationTask.DoesNotExist as exc:
        raise TaskNotFoundError(f"no migration task {task_id!r} was found") from exc
    # Drops after the last stored message are known only to this process.
    task.dropped = max(task.dropped, get_runtime().dropped_count(task_id))
    return MigrationStatus.from_task(task)


astart_migration = sync_to_async(start_migration)
acancel_migration = sync_to_async(cancel_migration)
aget_status = sync_to_async(get_status)


def set_websocket_post_function(func: MessageFunction | None) -> None:
    """Send each message to ``func`` instead of the Channels group; None restores."""
    get_runtime().set_sink_function(WEBSOCKET_SINK, func)


def set_db_save_function(func: MessageFunction | None) -> None:
    """Send each message to ``func`` instead of the database; None restores."""
    get_runtime().set_sink_function(DATABASE_SINK, func)


def set_task_info(task_id: str, total_steps: int | None) -> None:
    """Give the next ``start_migration(task_id)`` a step count; None removes it."""
    from supervisor import _validation

    _validation.validate_task_id(task_id)
    get_runtime().set_total_steps(
        task_id, _validation.validate_total_steps(total_steps)
    )


def _default_target(
    target: Callable[..., Any] | str | None, settings: conf.MigrationSettings
) -> Callable[..., Any] | str:
    if target is not None:
        return target
    if settings.target is None:
        raise ValueError(
            "no target given: pass one to start_migration or set "
            f"{conf.SETTING_NAME}['TARGET'] to 'package.module:function'"
        )
    return settings.target


def _create_task(
    task_id: str,
    target: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    owner: Any,
    total_steps: int | None,
    process_id: str,
) -> MigrationTask:
    if MigrationTask.objects.filter(task_id=task_id).exists():
        raise TaskAlreadyExistsError(_exists_message(task_id))
    try:
        with transaction.atomic():
            return MigrationTask.objects.create(
                task_id=task_id,
                target=target,
                arguments={
                    "args": [json_or_repr(value) for value in args],
                    "kwargs": {key: json_or_repr(v) for key, v in kwargs.items()},
                },
                owner=_user_or_none(owner),
                total_steps=total_steps,
                supervised_by=process_id,
            )
    except IntegrityError as exc:
        raise TaskAlreadyExistsError(_exists_message(task_id)) from exc


def _exists_message(task_id: str) -> str:
    return (
        f"a migration task {task_id!r} already exists; task ids are never reused, "
        "so choose another"
    )


def json_or_repr(value: Any) -> Any:
    """Return ``value`` as JSON data, or its repr when JSON cannot hold it."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    try:
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return repr(value)[:MAX_ARGUMENT_REPR]


def _record_cancel_request(task_id: str, user: Any) -> bool:
    """Store who asked to cancel and when; return whether the task is unfinished."""
    not_final = MigrationTask.objects.filter(task_id=task_id).filter(
        ~Q(state__in=TaskState.final_values())
    )
    not_final.filter(cancel_requested_at__isnull=True).update(
        cancel_requested_at=timezone.now(), cancelled_by=user
    )
    return not_final.exists()


def _user_or_none(user: Any) -> Any:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def _username(user: Any) -> str | None:
    return None if user is None else user.get_username()
