"""URLs of the demo: its page, the migration app, admin, and sign-in."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from demo import views

demo_patterns = (
    [
        path("", views.index, name="index"),
        path("start/", views.start, name="start"),
        path("download/<str:task_id>/", views.download, name="download"),
    ],
    "demo",
)

urlpatterns = [
    path("", include(demo_patterns)),
    path("migrations/", include("django_integration.urls")),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
