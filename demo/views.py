"""The demo page: upload a Tableau workbook or pick the sample, convert, download.

Starting a conversion saves the upload under ``DEMO_UPLOAD_ROOT/<task_id>/``,
checks that it is a readable workbook (so a wrong file is rejected before any
child starts), and starts the job with its output in
``DEMO_OUTPUT_ROOT/<task_id>/``. The person then watches the task page of the
``django_integration`` app and, once the task succeeded, downloads the TMDL
folder as a zip from here.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import uuid
import zipfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.contrib.auth.views import redirect_to_login
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from demo.tableau.errors import WorkbookError
from demo.tableau.reader import read_workbook
from django_integration import conf, start_migration
from django_integration.models import MigrationTask, TaskState

logger = logging.getLogger(__name__)

JOB_TARGET = "demo.tableau.job:convert_workbook"
WORKBOOK_SUFFIXES = (".twb", ".twbx")
DEMO_USERNAME = "demo"
RECENT_TASKS = 20
# Room for the form fields and multipart headers around the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024
_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._ -]")


class UploadRejected(Exception):
    """The request cannot start a conversion, for the reason in the message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
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


def _render_index(
    request: HttpRequest, error: str = "", status: int = 200
) -> HttpResponse:
    tasks = MigrationTask.objects.filter(owner=request.user, target=JOB_TARGET)
    context = {
        "tasks": tasks[:RECENT_TASKS],
        "error": error,
        "max_upload_mb": round(max_upload_bytes() / (1024 * 1024), 1),
        "sample_name": sample_workbook().name,
        "succeeded": TaskState.SUCCEEDED,
    }
    return render(request, "demo/index.html", context, status=status)


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
        workbook = _workbook_for(request, task_id)
    except UploadRejected as exc:
        shutil.rmtree(upload_root() / task_id, ignore_errors=True)
        return _render_index(request, str(exc), exc.status)
    output = output_root() / task_id
    start_migration(
        task_id, JOB_TARGET, args=(str(workbook), str(output)), owner=request.user
    )
    logger.info("task %s: conversion of %s started", task_id, workbook.name)
    return redirect("django_integration:task", task_id=task_id)


def _workbook_for(request: HttpRequest, task_id: str) -> Path:
    if request.POST.get("source") == "sample":
        return sample_workbook()
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    limit = max_upload_bytes()
    if declared > limit + FORM_OVERHEAD_BYTES:
        raise UploadRejected(413, _too_large_message(declared, limit))
    upload = request.FILES.get("workbook")
    if upload is None:
        raise UploadRejected(
            400,
            "No workbook was uploaded: choose a .twb or .twbx file, or use the sample.",
        )
    return _save_upload(upload, task_id, limit)


def _too_large_message(size: int, limit: int) -> str:
    return (
        f"The upload is {size} bytes; workbooks of at most {limit} bytes "
        f"({limit / (1024 * 1024):.1f} MiB) are accepted."
    )


def _save_upload(upload: UploadedFile, task_id: str, limit: int) -> Path:
    original = Path(upload.name or "").name
    suffix = Path(original).suffix.lower()
    if suffix not in WORKBOOK_SUFFIXES:
        raise UploadRejected(
            400,
            f"{original!r} is not a Tableau workbook: upload a .twb or .twbx file.",
        )
    if upload.size is not None and upload.size > limit:
        raise UploadRejected(413, _too_large_message(upload.size, limit))
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
        raise UploadRejected(400, f"The upload was rejected: {exc}.") from exc
    return path


@require_GET
def download(request: HttpRequest, task_id: str) -> HttpResponse:
    """Send the TMDL folder of the owner's succeeded conversion as a zip file."""
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
    if task.state != TaskState.SUCCEEDED or not (folder / "definition").is_dir():
        raise Http404(f"conversion {task_id!r} has no output to download yet")
    archive = _zip_folder(folder / "definition", folder)
    return FileResponse(
        archive, as_attachment=True, filename=f"{task.task_id}-tmdl.zip"
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
