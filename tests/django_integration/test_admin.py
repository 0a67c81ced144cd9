"""The read-only admin pages of tasks, stored messages and web processes."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from django_integration.models import MigrationLog, MigrationTask

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.urls("tests.django_integration.admin_urls"),
]


@pytest.mark.parametrize(
    "model", ["migrationtask", "migrationlog", "supervisorprocess"]
)
def test_changelist_renders(admin_client, model):
    task = MigrationTask.objects.create(task_id="admin-task", target="jobs:run")
    MigrationLog.objects.create(
        task=task, seq=1, event="log", message="<b>x</b>", timestamp=timezone.now()
    )
    response = admin_client.get(reverse(f"admin:django_integration_{model}_changelist"))
    assert response.status_code == 200


def test_task_links_to_its_messages(admin_client):
    for task_id in ("linked", "other"):
        task = MigrationTask.objects.create(task_id=task_id, target="jobs:run")
        MigrationLog.objects.create(
            task=task, seq=1, event="log", message=task_id, timestamp=timezone.now()
        )
    tasks_page = admin_client.get(
        reverse("admin:django_integration_migrationtask_changelist")
    )
    assert b"?task__task_id=linked" in tasks_page.content

    logs_url = reverse("admin:django_integration_migrationlog_changelist")
    logs_page = admin_client.get(f"{logs_url}?task__task_id=linked")
    assert logs_page.status_code == 200
    assert list(logs_page.context["cl"].queryset) == list(
        MigrationLog.objects.filter(task_id="linked")
    )


def test_admin_rejects_add(admin_client):
    response = admin_client.get(reverse("admin:django_integration_migrationtask_add"))
    assert response.status_code == 403
