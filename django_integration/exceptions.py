"""Errors of the Django app's API; the supervisor's own errors pass through unchanged.

``start_migration`` raises the supervisor's ``InvalidTaskIdError``,
``InvalidTargetError`` and ``UnpicklableArgumentsError`` for bad input, so a
caller catches one family of errors whichever layer found the problem.
"""

from __future__ import annotations

__all__ = ["MigrationError", "TaskAlreadyExistsError", "TaskNotFoundError"]


class MigrationError(Exception):
    """Base class of the errors the Django app raises itself."""


class TaskAlreadyExistsError(MigrationError, ValueError):
    """The database already contains a task with this id, and ids are never reused."""


class TaskNotFoundError(MigrationError, LookupError):
    """The database contains no task with this id."""
