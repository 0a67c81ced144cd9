"""The demo page: starting conversions from uploads or the sample, and downloads."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from django_integration import get_status
from django_integration.models import MigrationTask, TaskState

pytestmark = pytest.mark.urls("demo.urls")


@pytest.fixture
def folders(settings, tmp_path):
    settings.DEMO_UPLOAD_ROOT = tmp_path / "uploads"
    settings.DEMO_OUTPUT_ROOT = tmp_path / "output"
    return tmp_path


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password")


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def wait_until_final(task_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        status = get_status(task_id)
        if status.is_final:
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"task {task_id} still {status.state} after {timeout} s")
        time.sleep(0.05)


def task_id_from(response):
    assert response.status_code == 302
    prefix = "/migrations/tasks/"
    assert response["Location"].startswith(prefix)
    return response["Location"][len(prefix) :].rstrip("/")


def test_index_requires_login(client, db):
    response = client.get(reverse("demo:index"))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_index_auto_login(client, db, settings, django_user_model):
    settings.DEMO_AUTO_LOGIN = True
    response = client.get(reverse("demo:index"))
    assert response.status_code == 200
    assert response.wsgi_request.user.username == "demo"
    assert django_user_model.objects.filter(username="demo").exists()
    assert b"Use the sample workbook" in response.content


def test_sample_converts_and_downloads(signed_in, runtime, folders, user):
    response = signed_in.post(reverse("demo:start"), {"source": "sample"})
    task_id = task_id_from(response)
    task = MigrationTask.objects.get(task_id=task_id)
    assert task.owner == user
    assert task.arguments["args"][0].endswith("small-sales.twb")
    assert task.arguments["args"][1] == str(folders / "output" / task_id)

    status = wait_until_final(task_id)
    assert status.state == TaskState.SUCCEEDED
    assert status.progress == 100

    download = signed_in.get(reverse("demo:download", args=[task_id]))
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    names = set(archive.namelist())
    assert "definition/model.tmdl" in names
    assert "definition/tables/Orders.tmdl" in names
    assert archive.read("definition/tables/Orders.tmdl").startswith(
        b"/// Tableau datasource"
    )


def test_upload_saved_and_started(signed_in, runtime, folders, sample_path):
    upload = SimpleUploadedFile("my sales?.twb", sample_path.read_bytes())
    response = signed_in.post(
        reverse("demo:start"), {"source": "upload", "workbook": upload}
    )
    task_id = task_id_from(response)
    saved = folders / "uploads" / task_id / "my sales_.twb"
    assert saved.read_bytes() == sample_path.read_bytes()
    task = MigrationTask.objects.get(task_id=task_id)
    assert task.arguments["args"] == [str(saved), str(folders / "output" / task_id)]
    assert wait_until_final(task_id).state == TaskState.SUCCEEDED


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("notes.twb", b"meeting notes", "is not well-formed XML"),
        ("report.twb", b"<report/>", "expected &lt;workbook&gt;"),
        ("empty.twbx", b"", "is empty"),
        (
            "picture.png",
            b"\x89PNG",
            "is not a Tableau workbook: upload a .twb or .twbx",
        ),
    ],
)
def test_bad_upload_rejected(signed_in, db, folders, name, content, expected):
    upload = SimpleUploadedFile(name, content)
    response = signed_in.post(
        reverse("demo:start"), {"source": "upload", "workbook": upload}
    )
    assert response.status_code == 400
    assert expected in response.content.decode()
    assert not MigrationTask.objects.exists()
    uploads = folders / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_missing_upload_rejected(signed_in, db, folders):
    response = signed_in.post(reverse("demo:start"), {"source": "upload"})
    assert response.status_code == 400
    assert "No workbook was uploaded" in response.content.decode()
    assert not MigrationTask.objects.exists()


def test_oversize_upload_rejected(signed_in, db, folders, settings, sample_path):
    settings.MIGRATION_SUPERVISOR = {
        **settings.MIGRATION_SUPERVISOR,
        "MAX_UPLOAD_BYTES": 1000,
    }
    upload = SimpleUploadedFile("small-sales.twb", sample_path.read_bytes())
    response = signed_in.post(
        reverse("demo:start"), {"source": "upload", "workbook": upload}
    )
    assert response.status_code == 413
    assert "workbooks of at most 1000 bytes" in response.content.decode()
    assert not MigrationTask.objects.exists()


def test_start_requires_login(client, db, folders):
    response = client.post(reverse("demo:start"), {"source": "sample"})
    assert response.status_code == 302
    assert not MigrationTask.objects.exists()


def test_download_missing_before_success(signed_in, db, folders, user):
    MigrationTask.objects.create(
        task_id="demo-running",
        owner=user,
        target="demo.tableau.job:convert_workbook",
        state=TaskState.RUNNING,
    )
    (folders / "output" / "demo-running" / "definition").mkdir(parents=True)
    response = signed_in.get(reverse("demo:download", args=["demo-running"]))
    assert response.status_code == 404


def test_download_unknown_task(signed_in, db, folders):
    response = signed_in.get(reverse("demo:download", args=["no-such-task"]))
    assert response.status_code == 404


def test_download_other_users_task(signed_in, db, folders, django_user_model):
    bob = django_user_model.objects.create_user("bob", password="bob-password")
    MigrationTask.objects.create(
        task_id="demo-bobs",
        owner=bob,
        target="demo.tableau.job:convert_workbook",
        state=TaskState.SUCCEEDED,
    )
    (folders / "output" / "demo-bobs" / "definition").mkdir(parents=True)
    response = signed_in.get(reverse("demo:download", args=["demo-bobs"]))
    assert response.status_code == 403
