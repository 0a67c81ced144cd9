"""URLs of the fault-test project: the demo's, plus a start endpoint for the jobs
in ``tests.faults.jobs``."""

from django.urls import path

from demo.urls import urlpatterns as demo_urlpatterns
from tests.faults import views

urlpatterns = [
    path("faults/start/", views.start_job, name="faults-start"),
    *demo_urlpatterns,
]
