"""URLs of the bench project: only its control endpoints."""

from django.urls import path

from bench import views

urlpatterns = [
    path("bench/ping/", views.ping),
    path("bench/start/", views.start),
]
