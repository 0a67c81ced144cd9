"""URLs of the test project: the app's views and the login views they redirect to."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("migrations/", include("django_integration.urls")),
]
