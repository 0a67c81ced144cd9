"""Read-only admin pages: tasks, their stored streams and the supervising processes.

The rows are written by the supervisor's sinks, so the admin only shows them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from django_integration.models import MigrationLog, MigrationTask, SupervisorProcess


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MigrationTask)
class MigrationTaskAdmin(ReadOnlyAdmin):
    list_display = (
        "task_id",
        "state",
        "progress",
        "owner",
        "created_at",
        "finished_at",
        "message_count",
        "dropped",
        "stored_messages",
    )
    list_filter = ("state", "created_at")
    search_fields = ("task_id", "target", "owner__username", "error_message")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)

    @admin.display(description="stored messages")
    def stored_messages(self, task: MigrationTask) -> str:
        # A task can have hundreds of thousands of rows, so they are linked
        # rather than shown inline.
        url = reverse("admin:django_integration_migrationlog_changelist")
        return format_html('<a href="{}?task__task_id={}">view</a>', url, task.task_id)


@admin.register(MigrationLog)
class MigrationLogAdmin(ReadOnlyAdmin):
    list_display = ("task", "seq", "event", "message_type", "progress", "timestamp")
    list_filter = ("event", "message_type")
    search_fields = ("task__task_id", "message")
    list_select_related = ("task",)
    show_full_result_count = False


@admin.register(SupervisorProcess)
class SupervisorProcessAdmin(ReadOnlyAdmin):
    list_display = ("process_id", "hostname", "pid", "started_at", "heartbeat_at")
