"""A test-only view that starts one of the fault-test jobs for the logged-in user.

The app's own start view runs ``TARGET`` for users who may not choose a job. The
fault tests run their own jobs, owned by a user without permissions, in web
processes that serve HTTP and WebSockets, so they start them here through
``start_migration``.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

import django_integration
from tests.faults import jobs


@csrf_exempt
@require_POST
def start_job(request: HttpRequest) -> JsonResponse:
    if not request.user.is_authenticated:
        return JsonResponse({"error": "log in to start a job"}, status=403)
    body = json.loads(request.body)
    job = body["job"]
    if job not in jobs.__all__:
        return JsonResponse(
            {"error": f"unknown job {job!r}: use one of {jobs.__all__!r}"}, status=400
        )
    django_integration.start_migration(
        body["task_id"],
        f"tests.faults.jobs:{job}",
        kwargs=body.get("kwargs", {}),
        owner=request.user,
        total_steps=body.get("total_steps"),
    )
    status = django_integration.get_status(body["task_id"])
    return JsonResponse({"status": status.to_dict()})
