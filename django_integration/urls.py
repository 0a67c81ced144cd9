"""URLs of the app; include them under any prefix, such as ``migrations/``."""

from django.urls import path

from django_integration import views

app_name = "django_integration"

urlpatterns = [
    path("", views.task_list, name="task_list"),
    path("start/", views.start, name="start"),
    path("tasks/<str:task_id>/", views.task_page, name="task"),
    path("tasks/<str:task_id>/status/", views.status, name="status"),
    path("tasks/<str:task_id>/cancel/", views.cancel, name="cancel"),
]
