"""Checks on what ``Supervisor.start`` receives, done in the web process.

A bad argument fails the call at once with a precise error instead of starting a
child that dies during its setup.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
import threading
from collections.abc import Callable, Mapping
from multiprocessing.reduction import ForkingPickler
from typing import Any

from .exceptions import (
    InvalidTargetError,
    InvalidTaskIdError,
    UnpicklableArgumentsError,
)

__all__ = [
    "TASK_ID_PATTERN",
    "check_task_id_type",
    "resolve_target",
    "validate_arguments",
    "validate_task_id",
    "validate_timeout",
    "validate_total_steps",
    "validate_wait_timeout",
]

TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def validate_task_id(task_id: object) -> str:
    """Return ``task_id`` if it is 1 to 64 letters, digits, ``_`` or ``-``."""
    if not isinstance(task_id, str) or not TASK_ID_PATTERN.fullmatch(task_id):
        raise InvalidTaskIdError(
            f"invalid task id {task_id!r}: use 1 to 64 characters from A-Z, a-z, "
            "0-9, '_' and '-'"
        )
    return task_id


def check_task_id_type(task_id: object) -> None:
    """Raise InvalidTaskIdError unless ``task_id`` is a str.

    A str that breaks the id rule is left to the lookup, which finds no task.
    """
    if not isinstance(task_id, str):
        raise InvalidTaskIdError(
            f"invalid task id {task_id!r}: use a str of 1 to 64 characters from "
            "A-Z, a-z, 0-9, '_' and '-'"
        )


def resolve_target(target: Callable[..., Any] | str) -> str:
    """Return the ``"module:qualname"`` import path the child will run."""
    if isinstance(target, str):
        _resolve_import_path(target)
        return target
    if not callable(target):
        raise InvalidTargetError(
            f"invalid target {target!r}: pass a module-level function or an "
            "import path such as 'package.module:function'"
        )
    path = _import_path_of(target)
    if _resolve_import_path(path) is not target:
        raise InvalidTargetError(
            f"invalid target {target!r}: {path!r} imports a different object, "
            "so pass a module-level function under its own name"
        )
    return path


def _import_path_of(target: Callable[..., Any]) -> str:
    if inspect.ismethod(target):
        raise InvalidTargetError(
            f"invalid target {target!r}: bound methods are rejected because the "
            "child cannot rebuild their instance; pass a module-level function"
        )
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not module or not qualname:
        raise InvalidTargetError(
            f"invalid target {target!r}: it has no module and qualified name; "
            "pass a module-level function"
        )
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise InvalidTargetError(
            f"invalid target {target!r}: lambdas and nested functions cannot be "
            "imported by the child; pass a module-level function"
        )
    return f"{module}:{qualname}"


def _resolve_import_path(path: str) -> Callable[..., Any]:
    module_name, colon, qualname = path.partition(":")
    if not colon or not module_name or not qualname:
        raise InvalidTargetError(
            f"invalid target {path!r}: expected 'package.module:function'"
        )
    if module_name == "__main__":
        # The child does not run the web process's main script, so nothing
        # defined there can be imported.
        raise InvalidTargetError(
            f"invalid target {path!r}: functions of the __main__ module cannot "
            "be imported by the child; move the function into a module"
        )
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidTargetError(
            f"invalid target {path!r}: module {module_name!r} cannot be imported"
        ) from exc
    for part in qualname.split("."):
        try:
            found = getattr(found, part)
        except AttributeError as exc:
            raise InvalidTargetError(
                f"invalid target {path!r}: {module_name!r} has no attribute "
                f"{qualname!r}"
            ) from exc
    if not callable(found):
        raise InvalidTargetError(
            f"invalid target {path!r}: it names {type(found).__name__!r} object, "
            "not a callable"
        )
    return found  # type: ignore[no-any-return]


def validate_arguments(
    args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Return copies of ``args`` and ``kwargs`` after checking each one pickles."""
    for index, value in enumerate(args):
        _check_pickles(f"argument {index}", value)
    for name, value in kwargs.items():
        if not isinstance(name, str):
            raise UnpicklableArgumentsError(
                f"invalid keyword argument name {name!r}: names must be strings"
            )
        _check_pickles(f"keyword argument {name!r}", value)
    return tuple(args), dict(kwargs)


def _check_pickles(label: str, value: object) -> None:
    try:
        ForkingPickler.dumps(value)
    except Exception as exc:
        raise UnpicklableArgumentsError(
            f"{label} {value!r} cannot be pickled for the child process; pass "
            "plain data such as str, int, list or dict"
        ) from exc


def validate_total_steps(total_steps: object) -> int | None:
    """Return ``total_steps`` if it is None or a positive int."""
    if total_steps is None:
        return None
    if isinstance(total_steps, bool) or not isinstance(total_steps, int):
        raise ValueError(
            f"invalid total_steps {total_steps!r}: use a positive int or None"
        )
    if total_steps < 1:
        raise ValueError(
            f"invalid total_steps {total_steps!r}: use a positive int or None"
        )
    return total_steps


#: Longest timeout accepted, 30 days; a longer limit is better written as None.
MAX_TIMEOUT = 30 * 24 * 3600.0


def validate_timeout(timeout: object) -> float | None:
    """Return ``timeout`` in seconds if it is None or a positive finite number."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError(f"invalid timeout {timeout!r}: use seconds > 0 or None")
    if not math.isfinite(timeout) or not 0 < timeout <= MAX_TIMEOUT:
        raise ValueError(
            f"invalid timeout {timeout!r}: use seconds from 0 to {MAX_TIMEOUT:g} "
            "(exclusive of 0), or None for no limit"
        )
    return float(timeout)


def validate_wait_timeout(timeout: object) -> float | None:
    """Return the seconds to wait for: None (or infinity) for no limit.

    Raises TypeError for a value that is not a number, and ValueError for a
    negative number or NaN.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(
            f"invalid timeout {timeout!r}: use a number of seconds >= 0, or None "
            "to wait without a limit"
        )
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(
            f"invalid timeout {timeout!r}: use a number of seconds >= 0, or None "
            "to wait without a limit"
        )
    # Event.wait() raises OverflowError beyond TIMEOUT_MAX (about 292 years).
    if timeout > threading.TIMEOUT_MAX:
        return None
    return float(timeout)
