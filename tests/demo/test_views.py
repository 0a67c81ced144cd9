"""The demo page: starting conversions from uploads or the sample, and downloads."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import escape

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
    assert "small-sales.SemanticModel/definition.pbism" in names
    assert "small-sales.SemanticModel/definition/model.tmdl" in names
    orders = "small-sales.SemanticModel/definition/tables/Orders.tmdl"
    assert archive.read(orders).startswith(b"/// Tableau datasource")


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
    assert task.arguments["kwargs"] == {"step_delay": 0.0}
    assert wait_until_final(task_id).state == TaskState.SUCCEEDED


def test_step_delay_passed_to_job(signed_in, runtime, folders):
    response = signed_in.post(
        reverse("demo:start"), {"source": "sample", "step_delay": "0.05"}
    )
    task_id = task_id_from(response)
    task = MigrationTask.objects.get(task_id=task_id)
    assert task.arguments["kwargs"] == {"step_delay": 0.05}
    assert wait_until_final(task_id).state == TaskState.SUCCEEDED


@pytest.mark.parametrize("value", ["-0.1", "2.5", "nan", "inf", "fast"])
def test_step_delay_invalid_rejected(signed_in, db, folders, value):
    response = signed_in.post(
        reverse("demo:start"), {"source": "sample", "step_delay": value}, follow=True
    )
    assert response.status_code == 400
    expected = f"The pause per step {value!r} is invalid: enter 0 to 2 seconds."
    assert escape(expected) in response.content.decode()
    assert not MigrationTask.objects.exists()


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
        reverse("demo:start"), {"source": "upload", "workbook": upload}, follow=True
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert expected in page
    assert '<p class="error-message" role="alert">' in page
    assert 'name="workbook"' in page
    assert not MigrationTask.objects.exists()
    uploads = folders / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_error_shown_once(signed_in, db, folders):
    first = signed_in.post(reverse("demo:start"), {"source": "upload"})
    first = first.content.decode()
    again = signed_in.get(reverse("demo:index")).content.decode()
    assert "No workbook was uploaded" in first
    assert "No workbook was uploaded" not in again


def test_missing_upload_rejected(signed_in, db, folders):
    response = signed_in.post(reverse("demo:start"), {"source": "upload"})
    assert response.status_code == 400
    assert "No workbook was uploaded" in response.content.decode()
    assert not MigrationTask.objects.exists()


def test_oversize_upload_names_file_size(signed_in, db, folders, settings, sample_path):
    settings.MIGRATION_SUPERVISOR = {
        **settings.MIGRATION_SUPERVISOR,
        "MAX_UPLOAD_BYTES": 1000,
    }
    content = sample_path.read_bytes()
    upload = SimpleUploadedFile("small-sales.twb", content)
    response = signed_in.post(
        reverse("demo:start"), {"source": "upload", "workbook": upload}, follow=True
    )
    assert response.status_code == 413
    expected = (
        f"'small-sales.twb' is {len(content)} bytes; "
        "workbooks of at most 1000 bytes are accepted."
    )
    assert escape(expected) in response.content.decode()
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
    (folders / "output" / "demo-running" / "sales.SemanticModel").mkdir(parents=True)
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
    (folders / "output" / "demo-bobs" / "sales.SemanticModel").mkdir(parents=True)
    response = signed_in.get(reverse("demo:download", args=["demo-bobs"]))
    assert response.status_code == 403


@pytest.fixture
def demo_templates(settings):
    """The demo's app order, which lets its templates replace the app's."""
    apps = [app for app in settings.INSTALLED_APPS if app != "demo"]
    apps.insert(apps.index("django_integration"), "demo")
    settings.INSTALLED_APPS = apps


def conversion(task_id, owner, state, workbook="/uploads/x/Quarterly Sales.twbx"):
    return MigrationTask.objects.create(
        task_id=task_id,
        owner=owner,
        target="demo.tableau.job:convert_workbook",
        arguments={"args": [workbook, "/output/x"], "kwargs": {}},
        state=state,
    )


def test_pages_link_home_and_task_list(signed_in, db, user, demo_templates):
    conversion("demo-nav", user, TaskState.RUNNING)
    home = f'href="{reverse("demo:index")}"'
    task_list = f'href="{reverse("django_integration:task_list")}"'
    for url in [
        reverse("demo:index"),
        reverse("django_integration:task", args=["demo-nav"]),
        reverse("django_integration:task_list"),
    ]:
        page = signed_in.get(url).content.decode()
        assert home in page, url
        assert task_list in page, url
        assert '<link rel="icon" href="data:,">' in page, url


def test_task_page_download_hidden_until_succeeded(signed_in, db, user, demo_templates):
    conversion("demo-running", user, TaskState.RUNNING)
    page = signed_in.get(reverse("django_integration:task", args=["demo-running"]))
    html = page.content.decode()
    assert '<p id="download" class="download" hidden>' in html
    assert f'href="{reverse("demo:download", args=["demo-running"])}"' in html
    assert "new MutationObserver(update)" in html


def test_task_page_download_shown_when_succeeded(signed_in, db, user, demo_templates):
    conversion("demo-done", user, TaskState.SUCCEEDED)
    page = signed_in.get(reverse("django_integration:task", args=["demo-done"]))
    html = page.content.decode()
    assert '<p id="download" class="download">' in html
    assert "<code>Quarterly Sales.twbx</code>" in html


def test_task_page_no_download_for_other_jobs(signed_in, db, user, demo_templates):
    MigrationTask.objects.create(
        task_id="demo-other-job",
        owner=user,
        target="tests.demo.jobs:wait_for_cancel",
        state=TaskState.SUCCEEDED,
    )
    page = signed_in.get(reverse("django_integration:task", args=["demo-other-job"]))
    assert page.status_code == 200
    assert 'id="download"' not in page.content.decode()


def test_task_list_names_workbook(signed_in, db, user, demo_templates):
    conversion("demo-listed", user, TaskState.SUCCEEDED)
    page = signed_in.get(reverse("django_integration:task_list")).content.decode()
    assert '<span class="workbook-name">Quarterly Sales.twbx</span>' in page
    assert "most recent tasks are shown" not in page


def test_index_lists_conversions(signed_in, db, user):
    conversion("demo-indexed", user, TaskState.SUCCEEDED)
    page = signed_in.get(reverse("demo:index")).content.decode()
    assert "<td>Quarterly Sales.twbx</td>" in page
    assert '<span class="state state-succeeded">Succeeded</span>' in page
    assert f'href="{reverse("demo:download", args=["demo-indexed"])}"' in page
    assert 'name="step_delay" value="0.5"' in page


def test_login_page_hint_uses_venv(client, db):
    page = client.get(reverse("login")).content.decode()
    assert "<code>.venv/bin/python manage.py create_demo_user</code>" in page
