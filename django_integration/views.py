"""HTTP views: start and cancel migrations, read their status, watch their pages.

``start``, ``cancel`` and ``status`` return JSON, so scripts can use them. ``start``
also takes an HTML form post and then redirects to the task's page. Every error
response names the bad value and what to send instead: JSON ``{"error": "..."}``
from JSON views and for JSON requests, a small HTML page otherwise.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse

import django_integration
from django_integration import permissions
from django_integration.conf import get_settings
from django_integration.exceptions import MigrationError, TaskAlreadyExistsError
from django_integration.models import TASK_ID_PATTERN, MigrationTask
from django_integration.runtime import get_runtime
from supervisor.exceptions import (
    InvalidTargetError,
    InvalidTaskIdError,
    SupervisorClosedError,
    SupervisorError,
    TaskAlreadyActiveError,
    UnpicklableArgumentsError,
)

logger = logging.getLogger(__name__)

#: Tasks shown on the task list, newest first.
TASK_LIST_LIMIT = 100

_TASK_ID = re.compile(TASK_ID_PATTERN)
_START_FIELDS = ("task_id", "target", "args", "kwargs")
_FORM_ONLY_FIELDS = ("csrfmiddlewaretoken",)
_TASK_ID_RULE = "use 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'"


class RequestError(Exception):
    """A request that gets an error response with the HTTP status ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# Answers.


def wants_json(request: HttpRequest) -> bool:
    """Tell whether the client sent JSON or accepts only a JSON response."""
    accept = request.headers.get("Accept", "")
    return request.content_type == "application/json" or (
        "application/json" in accept and "text/html" not in accept
    )


def json_error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def html_error(request: HttpRequest, status: int, message: str) -> HttpResponse:
    return render(
        request,
        "django_integration/error.html",
        {"status": status, "message": message},
        status=status,
    )


def allow_methods(*methods: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Reject other methods with 405, an ``Allow`` header and a JSON error."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = json_error(
                    405,
                    f"method {request.method!r} is not allowed here: use "
                    f"{' or '.join(methods)}",
                )
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def status_dict(task_id: str) -> dict[str, Any]:
    """Return ``get_status(task_id)`` as JSON-safe values."""
    return django_integration.get_status(task_id).to_dict()


def task_urls(task_id: str) -> dict[str, str]:
    return {
        "page": reverse("django_integration:task", args=[task_id]),
        "status": reverse("django_integration:status", args=[task_id]),
        "cancel": reverse("django_integration:cancel", args=[task_id]),
        "websocket": f"/ws/migration/{task_id}/",
    }


# Looking up the task a request is about.


def find_task(
    user: Any, task_id: str, check: Callable[[Any, MigrationTask], bool]
) -> MigrationTask:
    """Return the task ``user`` may act on, or raise RequestError (400/403/404)."""
    if not _TASK_ID.fullmatch(task_id):
        raise RequestError(400, f"invalid task id {task_id!r}: {_TASK_ID_RULE}")
    if not user.is_authenticated:
        raise RequestError(
            403, "log in first: migrations are shown to their users only"
        )
    task = MigrationTask.objects.filter(task_id=task_id).first()
    if task is None:
        raise RequestError(
            404, f"no migration task {task_id!r}: check the id, or start it first"
        )
    if not check(user, task):
        raise RequestError(403, _forbidden_message(task_id, check))
    return task


def _forbidden_message(task_id: str, check: Callable[..., bool]) -> str:
    if check is permissions.can_cancel:
        permission, verb = permissions.cancel_permission(), "cancel"
    else:
        permission, verb = permissions.watch_permission(), "watch"
    return (
        f"you may not {verb} migration task {task_id!r}: only its owner or a user "
        f"with the permission {permission!r} may"
    )


# Starting a task.


def parse_start_request(request: HttpRequest) -> dict[str, Any]:
    """Return the start fields of a JSON or form post, validated."""
    if request.content_type == "application/json":
        fields = _read_json_body(request)
    else:
        fields = _read_form(request)
    unknown = sorted(set(fields) - set(_START_FIELDS) - set(_FORM_ONLY_FIELDS))
    if unknown:
        raise RequestError(
            400,
            f"unknown field {unknown[0]!r}: send only {', '.join(_START_FIELDS)}",
        )
    return {
        "task_id": _parse_task_id(fields.get("task_id")),
        "target": _parse_target(request.user, fields.get("target")),
        "args": _parse_json_field(fields, "args", list, "a JSON array", []),
        "kwargs": _parse_json_field(fields, "kwargs", dict, "a JSON object", {}),
    }


def _read_json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            400, f"invalid JSON body ({exc}): send an object such as {{}}"
        ) from exc
    if not isinstance(body, dict):
        raise RequestError(
            400,
            f"invalid JSON body of type {type(body).__name__}: send an object "
            'such as {"args": []}',
        )
    return body


def _read_form(request: HttpRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in request.POST.items():
        if value != "":
            fields[name] = value
    return fields


def _parse_task_id(value: Any) -> str:
    if value is None or value == "":
        return uuid.uuid4().hex
    if not isinstance(value, str) or not _TASK_ID.fullmatch(value):
        raise RequestError(
            400,
            f"invalid task_id {value!r}: {_TASK_ID_RULE}, or leave it out to get a "
            "generated one",
        )
    return value


def _parse_target(user: Any, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not permissions.can_choose_target(user):
        raise RequestError(
            403,
            f"you may not choose the target {value!r}: leave target out to run the "
            f"default job, or ask for the permission "
            f"{permissions.target_permission()!r}",
        )
    if not isinstance(value, str):
        raise RequestError(
            400,
            f"invalid target {value!r}: use an import path such as "
            "'package.module:function'",
        )
    return value


def _parse_json_field(
    fields: dict[str, Any], name: str, kind: type, description: str, default: Any
) -> Any:
    value = fields.get(name, default)
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise RequestError(
                400, f"invalid JSON in {name} ({exc}): send {description}"
            ) from exc
    if not isinstance(value, kind):
        raise RequestError(
            400, f"invalid {name} of type {type(value).__name__}: send {description}"
        )
    return value


def run_start(user: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """Start the task and return its status, or raise RequestError."""
    if fields["target"] is None and get_settings().target is None:
        raise RequestError(
            503,
            "no default job is configured: set MIGRATION_SUPERVISOR['TARGET'] to "
            "an import path such as 'package.module:function'",
        )
    task_id = fields["task_id"]
    try:
        django_integration.start_migration(
            task_id,
            fields["target"],
            args=tuple(fields["args"]),
            kwargs=fields["kwargs"],
            owner=user,
        )
    except (TaskAlreadyExistsError, TaskAlreadyActiveError) as exc:
        message = f"{exc}, or leave task_id out to get a generated one"
        raise RequestError(409, message) from exc
    except (InvalidTaskIdError, InvalidTargetError, UnpicklableArgumentsError) as exc:
        raise RequestError(400, str(exc)) from exc
    except SupervisorClosedError as exc:
        raise RequestError(503, f"{exc}; try again once the server restarted") from exc
    except (MigrationError, SupervisorError) as exc:
        raise RequestError(400, str(exc)) from exc
    logger.info("Task %s started by user %s", task_id, user.pk)
    return status_dict(task_id)


@allow_methods("POST")
def start(request: HttpRequest) -> HttpResponse:
    """Start a migration from a JSON or form post; the user must be logged in."""
    as_json = wants_json(request)
    if not request.user.is_authenticated:
        if as_json:
            return json_error(403, "log in first: only users may start migrations")
        return redirect_to_login(reverse("django_integration:task_list"))
    try:
        fields = parse_start_request(request)
        status = run_start(request.user, fields)
    except RequestError as exc:
        logger.info(
            "Rejected start request of user %s (HTTP %s): %s",
            request.user.pk,
            exc.status,
            exc,
        )
        if as_json:
            return json_error(exc.status, str(exc))
        return html_error(request, exc.status, str(exc))

    task_id = fields["task_id"]
    if not as_json:
        return redirect("django_integration:task", task_id=task_id)
    return JsonResponse(
        {"task_id": task_id, "status": status, "urls": task_urls(task_id)}, status=202
    )


# Cancelling and reading one task.


@allow_methods("POST")
def cancel(request: HttpRequest, task_id: str) -> JsonResponse:
    """Cancel a task; the owner or a user with ``CANCEL_PERMISSION`` may."""
    try:
        task = find_task(request.user, task_id, permissions.can_cancel)
    except RequestError as exc:
        return json_error(exc.status, str(exc))

    if task.is_final:
        return JsonResponse(
            {
                "task_id": task_id,
                "cancelled": False,
                "state": task.state,
                "message": f"task {task_id!r} already ended ({task.state}); "
                "nothing to cancel",
            },
            status=409,
        )
    cancelled = bool(django_integration.cancel_migration(task_id, by=request.user))
    logger.info(
        "Task %s: cancel requested by user %s (accepted: %s)",
        task_id,
        request.user.pk,
        cancelled,
    )
    message = "cancel requested" if cancelled else "the task was not running"
    return JsonResponse(
        {"task_id": task_id, "cancelled": cancelled, "message": message}
    )


@allow_methods("GET", "HEAD")
def status(request: HttpRequest, task_id: str) -> JsonResponse:
    """Return the task's status as JSON."""
    try:
        find_task(request.user, task_id, permissions.can_watch)
    except RequestError as exc:
        return json_error(exc.status, str(exc))
    return JsonResponse(status_dict(task_id))


# Pages.


@allow_methods("GET", "HEAD")
def task_page(request: HttpRequest, task_id: str) -> HttpResponse:
    """Show one task: progress bar, live log view and outcome."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    try:
        task = find_task(request.user, task_id, permissions.can_watch)
    except RequestError as exc:
        return html_error(request, exc.status, str(exc))

    page_config = {
        "task_id": task_id,
        "status": status_dict(task_id),
        "urls": task_urls(task_id),
    }
    return render(
        request,
        "django_integration/task.html",
        {
            "task": task,
            "page_config": page_config,
            "can_cancel": permissions.can_cancel(request.user, task),
        },
    )


@allow_methods("GET", "HEAD")
def task_list(request: HttpRequest) -> HttpResponse:
    """List recent tasks: the user's own, or all with ``WATCH_PERMISSION``."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    get_runtime().check_lost_tasks()
    tasks = permissions.visible_tasks(request.user).select_related("owner")
    return render(
        request,
        "django_integration/task_list.html",
        {"tasks": tasks[:TASK_LIST_LIMIT], "limit": TASK_LIST_LIMIT},
    )
