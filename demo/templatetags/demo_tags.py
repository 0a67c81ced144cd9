"""Template filters that show a demo conversion's workbook on the app's pages."""

from __future__ import annotations

from pathlib import PurePath

from django import template

from demo.tableau import JOB_TARGET
from django_integration.models import MigrationTask

register = template.Library()


@register.filter
def is_conversion(task: MigrationTask) -> bool:
    """Return whether ``task`` runs the demo's workbook conversion."""
    return bool(task.target == JOB_TARGET)


@register.filter
def workbook_name(task: MigrationTask) -> str:
    """Return the file name of the workbook a conversion reads, or ``""``.

    The path is the job's first argument; tasks of other jobs give ``""``.
    """
    if not is_conversion(task):
        return ""
    arguments = task.arguments or {}
    args = arguments.get("args") or []
    if not args or not isinstance(args[0], str):
        return ""
    return PurePath(args[0]).name
