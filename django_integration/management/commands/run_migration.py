"""``manage.py run_migration``: run a migration job from a terminal and follow it."""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from django_integration import cancel_migration, get_status, start_migration
from django_integration.api import MigrationStatus
from django_integration.exceptions import MigrationError
from django_integration.models import MigrationLog

#: Exit code for each final state; 2 is for input the task could not start with.
EXIT_CODES = {
    "succeeded": 0,
    "failed": 1,
    "cancelled": 3,
    "timed_out": 4,
    "crashed": 5,
    "lost": 5,
}
EXIT_BAD_INPUT = 2
#: Seconds between two reads of the task's status and new log rows.
POLL_INTERVAL = 0.2


class Command(BaseCommand):
    help = (
        "Run a migration job in a supervised child process, show its progress bar "
        "and log as they arrive, and exit with its outcome: 0 succeeded, 1 failed, "
        "2 bad input (nothing started), 3 cancelled, 4 timed out, 5 crashed or "
        "lost. Ctrl-C cancels the task and waits for it to end; a second Ctrl-C "
        "stops waiting. Example: manage.py run_migration -- "
        "demo/samples/small-sales.twb var/output/sample"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "job_args",
            nargs="*",
            metavar="ARG",
            help="arguments passed to the job as strings (put them after --)",
        )
        parser.add_argument(
            "--task-id", help="task id, [A-Za-z0-9_-]{1,64} (default: a new one)"
        )
        parser.add_argument(
            "--target",
            help="job to run as package.module:function (default: the TARGET key "
            "of the MIGRATION_SUPERVISOR setting)",
        )
        parser.add_argument(
            "--total-steps",
            type=int,
            help="number of steps for the job's increment_progress() calls",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            help="seconds the task may run before it is stopped as timed out",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="print only the final status, as JSON, with no bar and no log",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        task_id = options["task_id"] or f"cli-{uuid.uuid4().hex[:16]}"
        try:
            start_migration(
                task_id,
                options["target"],
                args=tuple(options["job_args"]),
                total_steps=options["total_steps"],
                timeout=options["timeout"],
            )
        except (MigrationError, ValueError, TypeError) as exc:
            raise CommandError(
                f"task {task_id} was not started: {exc}", returncode=EXIT_BAD_INPUT
            ) from exc

        # OutputWrapper adds a newline to every write, which would break the
        # bar's in-place redraws, so the bar writes to the stream it wraps.
        bar_stream = getattr(self.stderr, "_out", sys.stderr)
        follower = _Follower(task_id, self.stdout, bar_stream, quiet=options["json"])
        status = follower.follow()
        code = EXIT_CODES.get(status.state, EXIT_CODES["lost"])
        if options["json"]:
            self.stdout.write(json.dumps(status.to_dict()))
        else:
            self.stdout.write(_outcome_line(status))
        if code:
            sys.exit(code)


class _Follower:
    """Poll one task's status and log rows, printing above a tqdm bar."""

    def __init__(
        self, task_id: str, out: Any, bar_stream: TextIO, *, quiet: bool
    ) -> None:
        self._task_id = task_id
        self._out = out
        self._quiet = quiet
        self._last_seq = 0
        self._bar = tqdm(
            total=100,
            desc=task_id,
            unit="%",
            bar_format="{desc} {bar} {n:.0f}% [{elapsed}]",
            file=bar_stream,
            disable=quiet,
            dynamic_ncols=True,
        )

    def follow(self) -> MigrationStatus:
        """Return the task's final status; the first Ctrl-C cancels the task."""
        cancelling = False
        try:
            while True:
                try:
                    status = self._poll()
                    if status.is_final:
                        return status
                    time.sleep(POLL_INTERVAL)
                except KeyboardInterrupt:
                    if cancelling:
                        raise
                    cancelling = True
                    self._print(
                        f"Cancelling task {self._task_id}; Ctrl-C again to stop waiting"
                    )
                    cancel_migration(self._task_id)
        finally:
            self._bar.close()

    def _poll(self) -> MigrationStatus:
        status = get_status(self._task_id)
        rows = MigrationLog.objects.filter(
            task_id=self._task_id, seq__gt=self._last_seq
        ).order_by("seq")
        for row in rows:
            self._last_seq = row.seq
            if row.progress is not None:
                self._set_progress(row.progress)
            if row.event == "log":
                self._print(f"{row.message_type:<7} {row.message}")
        if status.progress is not None:
            self._set_progress(status.progress)
        return status

    def _set_progress(self, progress: int) -> None:
        if progress != self._bar.n:
            self._bar.n = progress
            self._bar.refresh()

    def _print(self, line: str) -> None:
        if self._quiet:
            return
        with tqdm.external_write_mode(file=self._bar.fp):
            self._out.write(line)


def _outcome_line(status: MigrationStatus) -> str:
    line = f"Task {status.task_id} {status.state}"
    if status.progress is not None:
        line += f" at {status.progress}%"
    if status.error:
        line += f": {status.error.get('type')}: {status.error.get('message')}"
    elif status.exit_code not in (None, 0) or status.signal:
        line += f" (exit code {status.exit_code}, signal {status.signal})"
    return line
