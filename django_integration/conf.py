"""The ``MIGRATION_SUPERVISOR`` setting: its keys, their defaults and their rules.

Every key is optional. ``OPTIONS`` below lists each key with its default, the
types it accepts and its allowed range. The system checks in ``checks.py`` report
a value outside those rules, and ``get_settings()`` raises for one.

=====================  ==========================================  =================
key                    meaning                                     default
=====================  ==========================================  =================
TARGET                 job run when ``start_migration`` gets no    None
                       target, as ``"package.module:function"``
MAX_WORKERS            children running at once per web process    None (supervisor
                                                                   default)
GRACE_PERIOD           seconds between SIGTERM and SIGKILL          5.0
TIMEOUT                seconds a task may run, None for no limit    None
MAX_MESSAGE_CHARS      characters of one message kept              65536
MAX_OPTIONS_BYTES      bytes of one message's encoded options      65536
MAX_UPLOAD_BYTES       largest file the upload view accepts        52428800 (50 MiB)
WATCH_PERMISSION       permission to watch other people's tasks    "django_integration.
                                                                   watch_any_migration"
CANCEL_PERMISSION      permission to cancel other people's tasks   "django_integration.
                                                                   cancel_any_migration"
TARGET_PERMISSION      permission to start a task with a job of    "django_integration.
                       one's choosing instead of TARGET            choose_migration_
                                                                   target"
BATCH_SEND             send runs of one task's messages as one     True
                       ``log_batch`` group message
SEND_CONCURRENCY       group sends in flight at once               8
HEARTBEAT_INTERVAL     seconds between a web process's heartbeats  2.0
CANCEL_POLL_INTERVAL   seconds between checks for cancel requests  1.0
                       made in other web processes
LOST_AFTER             seconds without heartbeat before the        15.0
                       process's tasks are marked lost
DB_BATCH_SIZE          log rows per INSERT                         500
DB_MAX_PENDING         messages the supervisor holds for the       100000
                       database saver, such as while the
                       database is unreachable; beyond this the
                       oldest are dropped, counted in the task's
                       status and announced by a warning in the
                       stream (other sinks keep the supervisor's
                       own bound)
START_METHOD           multiprocessing start method of children    None (forkserver
                                                                   on Linux)
=====================  ==========================================  =================
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

SETTING_NAME = "MIGRATION_SUPERVISOR"

_NUMBER = (int, float)


@dataclasses.dataclass(frozen=True)
class Option:
    """The rules for one key of ``MIGRATION_SUPERVISOR``."""

    default: Any
    types: tuple[type, ...]
    nullable: bool = False
    minimum: float | None = None
    #: Whether ``minimum`` itself is allowed.
    minimum_inclusive: bool = True
    choices: tuple[Any, ...] | None = None

    def problem(self, key: str, value: Any) -> tuple[str, str] | None:
        """Return ``(kind, description)`` if ``value`` is not allowed for ``key``.

        ``kind`` is ``"type"`` for a value of the wrong type and ``"value"`` for
        one outside the allowed range or choices.
        """
        if value is None:
            if self.nullable:
                return None
            return "value", f"{SETTING_NAME}[{key!r}] is None; it must be set"
        wrong_bool = isinstance(value, bool) and bool not in self.types
        if wrong_bool or not isinstance(value, self.types):
            return "type", self._type_problem(key, value)
        if self.choices is not None and value not in self.choices:
            return "value", (
                f"{SETTING_NAME}[{key!r}] is {value!r}; allowed: {self.choices!r}"
            )
        range_problem = self._range_problem(key, value)
        return None if range_problem is None else ("value", range_problem)

    def _type_problem(self, key: str, value: Any) -> str:
        names = " or ".join(kind.__name__ for kind in self.types)
        if self.nullable:
            names += " or None"
        return (
            f"{SETTING_NAME}[{key!r}] is {value!r} of type "
            f"{type(value).__name__}; expected {names}"
        )

    def _range_problem(self, key: str, value: Any) -> str | None:
        if self.minimum is None or not isinstance(value, _NUMBER):
            return None
        if value > self.minimum or (self.minimum_inclusive and value == self.minimum):
            return None
        relation = "at least" if self.minimum_inclusive else "greater than"
        return (
            f"{SETTING_NAME}[{key!r}] is {value!r}; it must be {relation} "
            f"{self.minimum}"
        )


OPTIONS: dict[str, Option] = {
    "TARGET": Option(None, (str,), nullable=True),
    "MAX_WORKERS": Option(None, (int,), nullable=True, minimum=1),
    "GRACE_PERIOD": Option(5.0, _NUMBER, minimum=0),
    "TIMEOUT": Option(None, _NUMBER, nullable=True, minimum=0, minimum_inclusive=False),
    "MAX_MESSAGE_CHARS": Option(64 * 1024, (int,), minimum=256),
    "MAX_OPTIONS_BYTES": Option(64 * 1024, (int,), minimum=256),
    "MAX_UPLOAD_BYTES": Option(50 * 1024 * 1024, (int,), minimum=1),
    "WATCH_PERMISSION": Option("django_integration.watch_any_migration", (str,)),
    "CANCEL_PERMISSION": Option("django_integration.cancel_any_migration", (str,)),
    "TARGET_PERMISSION": Option("django_integration.choose_migration_target", (str,)),
    "BATCH_SEND": Option(True, (bool,)),
    "SEND_CONCURRENCY": Option(8, (int,), minimum=1),
    "HEARTBEAT_INTERVAL": Option(2.0, _NUMBER, minimum=0, minimum_inclusive=False),
    "CANCEL_POLL_INTERVAL": Option(1.0, _NUMBER, minimum=0, minimum_inclusive=False),
    "LOST_AFTER": Option(15.0, _NUMBER, minimum=0, minimum_inclusive=False),
    "DB_BATCH_SIZE": Option(500, (int,), minimum=1),
    "DB_MAX_PENDING": Option(100_000, (int,), minimum=1),
    "START_METHOD": Option(
        None, (str,), nullable=True, choices=("forkserver", "spawn")
    ),
}


@dataclasses.dataclass(frozen=True)
class MigrationSettings:
    """``MIGRATION_SUPERVISOR`` merged over the defaults; attributes in lower case."""

    target: str | None
    max_workers: int | None
    grace_period: float
    timeout: float | None
    max_message_chars: int
    max_options_bytes: int
    max_upload_bytes: int
    watch_permission: str
    cancel_permission: str
    target_permission: str
    batch_send: bool
    send_concurrency: int
    heartbeat_interval: float
    cancel_poll_interval: float
    lost_after: float
    db_batch_size: int
    db_max_pending: int
    start_method: str | None


def configured_value() -> Any:
    """Return ``settings.MIGRATION_SUPERVISOR`` as written, ``{}`` when absent."""
    return getattr(django_settings, SETTING_NAME, {})


def find_problems(value: Any) -> list[tuple[str, str]]:
    """List ``(kind, description)`` for every rule ``value`` breaks.

    ``kind`` is ``"not_dict"``, ``"unknown"``, ``"type"``, ``"value"`` or
    ``"relation"``, and the system checks report each kind under its own id.
    """
    if not isinstance(value, Mapping):
        return [
            (
                "not_dict",
                f"{SETTING_NAME} is {value!r} of type {type(value).__name__}; "
                "expected a dict",
            )
        ]
    problems = [
        ("unknown", f"{SETTING_NAME} has the unknown key {key!r}")
        for key in value
        if key not in OPTIONS
    ]
    for key, option in OPTIONS.items():
        problem = option.problem(key, value.get(key, option.default))
        if problem is not None:
            problems.append(problem)
    if not problems:
        problems.extend(("relation", p) for p in _relation_problems(_merge(value)))
    return problems


def _relation_problems(merged: Mapping[str, Any]) -> list[str]:
    if merged["LOST_AFTER"] < 2 * merged["HEARTBEAT_INTERVAL"]:
        return [
            f"{SETTING_NAME}['LOST_AFTER'] is {merged['LOST_AFTER']!r}; it must be "
            f"at least twice HEARTBEAT_INTERVAL ({merged['HEARTBEAT_INTERVAL']!r}) "
            "so one late heartbeat does not mark a live process's tasks lost"
        ]
    return []


def _merge(value: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value.get(key, option.default) for key, option in OPTIONS.items()}


@functools.cache
def get_settings() -> MigrationSettings:
    """Return the validated settings; raise ImproperlyConfigured if they break a rule.

    The result is cached; ``clear_cache()`` (connected to Django's
    ``setting_changed`` signal) drops it.
    """
    value = configured_value()
    problems = find_problems(value)
    if problems:
        raise ImproperlyConfigured("; ".join(text for _, text in problems))
    merged = _merge(value)
    return MigrationSettings(**{key.lower(): merged[key] for key in OPTIONS})


def clear_cache(*, setting: str | None = None, **kwargs: Any) -> None:
    """Forget the cached settings; a ``setting_changed`` receiver."""
    if setting is None or setting == SETTING_NAME:
        get_settings.cache_clear()
