"""Who may watch, cancel and start migrations, and who may choose what they run.

The owner of a task may watch and cancel it. Other users need a permission:

``MIGRATION_SUPERVISOR["WATCH_PERMISSION"]`` (default
``"django_integration.watch_any_migration"``)
    watch any task: its page, its status, its WebSocket stream, the task list.
``MIGRATION_SUPERVISOR["CANCEL_PERMISSION"]`` (default
``"django_integration.cancel_any_migration"``)
    cancel any task.
``"django_integration.choose_migration_target"``
    start a task with a job of one's choosing; everyone else runs
    ``MIGRATION_SUPERVISOR["TARGET"]``.

Anonymous users may do none of this. The checks call ``user.has_perm``, which can
query the database, so async code calls them through ``database_sync_to_async``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from django_integration.conf import get_settings
from django_integration.models import MigrationTask

#: Used unless the settings define ``target_permission``.
DEFAULT_TARGET_PERMISSION = "django_integration.choose_migration_target"


def watch_permission() -> str:
    return get_settings().watch_permission


def cancel_permission() -> str:
    return get_settings().cancel_permission


def target_permission() -> str:
    # NOTE: the settings have no TARGET_PERMISSION key yet, and the models declare
    # no such permission, so only superusers, or users granted a Permission row
    # created by hand, may choose a target until both exist.
    return getattr(get_settings(), "target_permission", DEFAULT_TARGET_PERMISSION)


def is_owner(user: Any, task: MigrationTask) -> bool:
    return bool(user.is_authenticated) and task.owner_id == user.pk


def can_watch(user: Any, task: MigrationTask) -> bool:
    """Tell whether ``user`` may see the task's status, page and stream."""
    if user is None or not user.is_authenticated:
        return False
    return is_owner(user, task) or user.has_perm(watch_permission())


def can_cancel(user: Any, task: MigrationTask) -> bool:
    """Tell whether ``user`` may cancel the task."""
    if user is None or not user.is_authenticated:
        return False
    return is_owner(user, task) or user.has_perm(cancel_permission())


def can_choose_target(user: Any) -> bool:
    """Tell whether ``user`` may start a task with a job other than ``TARGET``."""
    if user is None or not user.is_authenticated:
        return False
    return bool(user.has_perm(target_permission()))


def visible_tasks(user: Any) -> QuerySet[MigrationTask]:
    """Return the tasks ``user`` may watch: their own, or all with the permission."""
    tasks = MigrationTask.objects.all()
    if user is None or not user.is_authenticated:
        return tasks.none()
    if user.has_perm(watch_permission()):
        return tasks
    return tasks.filter(owner_id=user.pk)
