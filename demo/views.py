"""The demo page: upload a Tableau workbook or pick the sample, convert, download.

Starting a conversion saves the upload under ``DEMO_UPLOAD_ROOT/<task_id>/``
and checks that it is a readable workbook, so a wrong file is rejected before
any child starts. Then it starts the job with its output in
``DEMO_OUTPUT_ROOT/<task_id>/`` and the pause per step the person chose. A
rejected upload shows the page again with the reason as an error message and
an error status (400, or 413 for a file over the size limit). The person then
watches the task page of the ``django_integration`` app and, once the task
succeeded, downloads the ``.SemanticModel`` folder as a zip from there or from
here.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import shutil
import uuid
import zipfile
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.views import redirect_to_login
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from demo.tableau import JOB_TARGET
from demo.tableau.errors import WorkbookError
from demo.tableau.job import MAX_STEP_DELAY
from demo.tableau.reader import read_workbook
from django_integration import conf, start_migration
from django_integration.models import MigrationTask, TaskState

logger = logging.getLogger(__name__)

WORKBOOK_SUFFIXES = (".twb", ".twbx")
DEMO_USERNAME = "demo"
RECENT_TASKS = 20
#: Pause per step, in seconds, that the form offers. The sample then takes about
#: 8 s, and a workbook with 70 calculated fields about 40 s, long enough to
#: watch the progress bar and cancel.
DEFAULT_STEP_DELAY = 0.5
_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._ -]")


class UploadRejected(Exception):
    """The request cannot start a conversion, for the reason in the message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        #: HTTP status of the page that shows the reason.
        self.status = status


_REPOSITORY = Path(__file__).resolve().parent.parent


def upload_root() -> Path:
    return Path(getattr(settings, "DEMO_UPLOAD_ROOT", _REPOSITORY / "var" / "uploads"))


def output_root() -> Path:
    return Path(getattr(settings, "DEMO_OUTPUT_ROOT", _REPOSITORY / "var" / "output"))


def sample_workbook() -> Path:
    default = _REPOSITORY / "demo" / "samples" / "small-sales.twb"
    return Path(getattr(settings, "DEMO_SAMPLE_WORKBOOK", default))


def max_upload_bytes() -> int:
    return conf.get_settings().max_upload_bytes


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """Show the upload form and the visitor's recent conversions."""
    if not request.user.is_authenticated:
        if not getattr(settings, "DEMO_AUTO_LOGIN", False):
            return redirect_to_login(request.get_full_path())
        _log_in_demo_user(request)
    return _render_index(request)


def _render_index(request: HttpRequest) -> HttpResponse:
    tasks = MigrationTask.objects.filter(owner=request.user, target=JOB_TARGET)
    context = {
        "tasks": tasks[:RECENT_TASKS],
        "max_upload_mb": round(max_upload_bytes() / (1024 * 1024), 1),
        "sample_name": sample_workbook().name,
        "succeeded": TaskState.SUCCEEDED,
        "default_step_delay": DEFAULT_STEP_DELAY,
        "max_step_delay": MAX_STEP_DELAY,
    }
    return render(request, "demo/index.html", context)


def _log_in_demo_user(request: HttpRequest) -> None:
    user, created = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    logger.info("signed in a visitor as the demo user %r", DEMO_USERNAME)


@require_POST
def start(request: HttpRequest) -> HttpResponse:
    """Start converting the uploaded workbook, or the sample, and show its task."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    task_id = f"tableau-{uuid.uuid4().hex[:16]}"
    try:
        step_delay = _step_delay_from(request)
        workbook = _workbook_for(request, task_id)
    except UploadRejected as exc:
        shutil.rmtree(upload_root() / task_id, ignore_errors=True)
        logger.info("task %s: upload rejected: %s", task_id, exc)
        messages.error(request, str(exc))
        # The page itself carries the error status, so scripts see it too.
        response = _render_index(request)
        response.status_code = exc.status
        return response
    output = output_root() / task_id
    start_migration(
        task_id,
        JOB_TARGET,
        args=(str(workbook), str(output)),
        kwargs={"step_delay": step_delay},
        owner=request.user,
    )
    logger.info("task %s: conversion of %s started", task_id, workbook.name)
    return redirect("django_integration:task", task_id=task_id)


def _step_delay_from(request: HttpRequest) -> float:
    text = request.POST.get("step_delay", "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= MAX_STEP_DELAY:
        raise UploadRejected(
            f"The pause per step {text!r} is invalid: enter 0 to "
            f"{MAX_STEP_DELAY:g} seconds.",
        )
    return value


def _workbook_for(request: HttpRequest, task_id: str) -> Path:
    if request.POST.get("source") == "sample":
        return sample_workbook()
    upload = request.FILES.get("workbook")
    if upload is None:
        raise UploadRejected(
            "No workbook was uploaded: choose a .twb or .twbx file, or use the sample.",
        )
    return _save_upload(upload, task_id, max_upload_bytes())


def _size_text(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size} bytes"
    return f"{size / (1024 * 1024):.1f} MiB"


def _save_upload(upload: UploadedFile, task_id: str, limit: int) -> Path:
    original = Path(upload.name or "").name
    suffix = Path(original).suffix.lower()
    if suffix not in WORKBOOK_SUFFIXES:
        raise UploadRejected(
            f"{original!r} is not a Tableau workbook: upload a .twb or .twbx file.",
        )
    # NOTE: the CSRF middleware parses the request body before this view runs,
    # so an oversized upload is already on disk when it is rejected here. A
    # proxy in front of Daphne that caps the body size stops it earlier.
    if upload.size is not None and upload.size > limit:
        raise UploadRejected(
            f"{original!r} is {_size_text(upload.size)}; workbooks of at most "
            f"{_size_text(limit)} are accepted.",
            status=413,
        )
    stem = _UNSAFE_FILE_CHARACTERS.sub("_", Path(original).stem).strip(" .")[:100]
    folder = upload_root() / task_id
    folder.mkdir(parents=True, exist_ok=False)
    path = folder / f"{stem or 'workbook'}{suffix}"
    with path.open("wb") as stream:
        for chunk in upload.chunks():
            stream.write(chunk)
    try:
        read_workbook(path)
    except WorkbookError as exc:
        raise UploadRejected(f"The upload was rejected: {exc}.") from exc
    return path


@require_GET
def download(request: HttpRequest, task_id: str) -> HttpResponse:
    """Send the semantic model of the owner's succeeded conversion as a zip file.

    The zip contains the ``<workbook>.SemanticModel`` folder: ``definition.pbism``
    and the TMDL files in ``definition/``.
    """
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    task = get_object_or_404(MigrationTask, task_id=task_id)
    if task.owner_id != request.user.pk:
        return HttpResponse(
            "Only the person who started this conversion may download it.",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    folder = output_root() / task.task_id
    models = sorted(folder.glob("*.SemanticModel")) if folder.is_dir() else []
    if task.state != TaskState.SUCCEEDED or not models:
        raise Http404(f"conversion {task_id!r} has no output to download yet")
    archive = _zip_folder(models[0], folder)
    return FileResponse(
        archive, as_attachment=True, filename=f"{task.task_id}-semantic-model.zip"
    )


def _zip_folder(folder: Path, base: Path) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for directory, _, files in os.walk(folder):
            for name in sorted(files):
                path = Path(directory) / name
                if path.is_symlink():
                    continue
                archive.write(path, path.relative_to(base).as_posix())
    buffer.seek(0)
    return buffer
