"""Django app that starts migrations in supervised child processes and streams them.

The public functions are imported on first use, so ``import django_integration``
works before Django settings are configured.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_integration.api import (
        acancel_migration,
        aget_status,
        astart_migration,
        cancel_migration,
        get_status,
        set_db_save_function,
        set_task_info,
        set_websocket_post_function,
        start_migration,
    )
    from django_integration.exceptions import (
        MigrationError,
        TaskAlreadyExistsError,
        TaskNotFoundError,
    )

_EXPORTS = {
    "start_migration": "django_integration.api",
    "astart_migration": "django_integration.api",
    "cancel_migration": "django_integration.api",
    "acancel_migration": "django_integration.api",
    "get_status": "django_integration.api",
    "aget_status": "django_integration.api",
    "set_websocket_post_function": "django_integration.api",
    "set_db_save_function": "django_integration.api",
    "set_task_info": "django_integration.api",
    "MigrationError": "django_integration.exceptions",
    "TaskAlreadyExistsError": "django_integration.exceptions",
    "TaskNotFoundError": "django_integration.exceptions",
}

__all__ = [
    "MigrationError",
    "TaskAlreadyExistsError",
    "TaskNotFoundError",
    "acancel_migration",
    "aget_status",
    "astart_migration",
    "cancel_migration",
    "get_status",
    "set_db_save_function",
    "set_task_info",
    "set_websocket_post_function",
    "start_migration",
]


def __getattr__(name: str) -> Any:
    module_path = _EXPORTS.get(name)
    if module_path is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_path), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
