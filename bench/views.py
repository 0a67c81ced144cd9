"""The bench's control endpoint, served by the web process under test.

``POST /bench/start/`` with ``{"mode": "supervised" | "inprocess", "tasks":
[{"task_id": ..., "kwargs": {...}}, ...]}`` starts each task as its owner, the
bench user, and returns the ``time.time()`` just before and after each start.
It takes no authentication: the bench serves it on the loopback interface only.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

import django_integration
from bench import inprocess

JOB_TARGET = "bench.jobs:log_messages"


@csrf_exempt
@require_POST
def start(request: HttpRequest) -> HttpResponse:
    body = json.loads(request.body)
    mode = body.get("mode")
    if mode not in ("supervised", "inprocess"):
        return JsonResponse(
            {"error": f"invalid mode {mode!r}: use 'supervised' or 'inprocess'"},
            status=400,
        )
    owner = get_user_model().objects.get(username=settings.BENCH_USERNAME)
    starter = _start_supervised if mode == "supervised" else _start_inprocess
    started = [
        starter(task["task_id"], task["kwargs"], owner) for task in body["tasks"]
    ]
    return JsonResponse({"started": started})


def ping(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


def _start_supervised(
    task_id: str, kwargs: dict[str, Any], owner: Any
) -> dict[str, Any]:
    called_at = time.time()
    django_integration.start_migration(task_id, JOB_TARGET, kwargs=kwargs, owner=owner)
    return {"task_id": task_id, "called_at": called_at, "returned_at": time.time()}


def _start_inprocess(
    task_id: str, kwargs: dict[str, Any], owner: Any
) -> dict[str, Any]:
    called_at = time.time()
    inprocess.create_task(task_id, owner)
    inprocess.start(task_id, kwargs)
    return {"task_id": task_id, "called_at": called_at, "returned_at": time.time()}
