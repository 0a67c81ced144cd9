"""The demo project run by a real Daphne for the browser tests.

``DemoServer`` migrates a fresh SQLite database in a folder of its own and creates
a superuser. It then starts ``python -m daphne`` on a free loopback port with the
demo settings and the in-memory channel layer. Stopping it kills the server and
every process the server started.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil

REPOSITORY = Path(__file__).resolve().parents[2]
T = TypeVar("T")

#: Environment variables of the demo settings that would point the server at
#: another database, channel layer or folder than the test's own.
DEMO_VARIABLES = re.compile(r"^(MIGRATION_DEMO_|DEMO_|DJANGO_)|^DATABASE_URL$")
LISTENING = re.compile(r"Listening on TCP address 127\.0\.0\.1:(\d+)")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def wait_for(predicate: Callable[[], T], timeout: float, description: str) -> T:
    """Call ``predicate`` until it returns a true value, and return that value.

    Raises ``TimeoutError`` naming ``description`` when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f} s waiting for {description}"
            )
        time.sleep(0.1)


class DemoServer:
    """One Daphne process serving ``demo.asgi:application`` from ``folder``."""

    def __init__(self, folder: Path, username: str, password: str) -> None:
        self.folder = folder
        self.var = folder / "var"
        self.database = self.var / "demo.sqlite3"
        self.log_path = folder / "daphne.log"
        self.username = username
        self.password = password
        self.base_url = ""
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not DEMO_VARIABLES.match(k)}
        env.update(
            DJANGO_SETTINGS_MODULE="demo.settings",
            MIGRATION_DEMO_VAR=str(self.var),
            # The children import the test jobs from the repository's packages.
            PYTHONPATH=str(REPOSITORY),
            PYTHONUNBUFFERED="1",
        )
        return env

    def manage(self, *arguments: str, **extra_env: str) -> None:
        """Run ``manage.py`` with the server's settings, raising if it fails."""
        command = [sys.executable, str(REPOSITORY / "manage.py"), *arguments]
        result = subprocess.run(
            command,
            cwd=REPOSITORY,
            env={**self.environment(), **extra_env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(arguments)} failed with exit code "
                f"{result.returncode}:\n{result.stdout}{result.stderr}"
            )

    def start(self) -> None:
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage(
            "createsuperuser",
            "--noinput",
            "--username",
            self.username,
            "--email",
            f"{self.username}@example.com",
            DJANGO_SUPERUSER_PASSWORD=self.password,
        )
        # Port 0 lets the kernel pick a free port, and Daphne logs the one it got.
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "0"]
        command.append("demo.asgi:application")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPOSITORY,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        port = wait_for(self._listening_port, START_TIMEOUT, "Daphne to listen")
        self.base_url = f"http://127.0.0.1:{port}"

    def _listening_port(self) -> str | None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"Daphne exited with code {self.process.returncode}:\n{self.log()}"
            )
        found = LISTENING.search(self.log())
        return found.group(1) if found else None

    def stop(self) -> None:
        """Stop Daphne and kill the processes it started. Safe to call twice."""
        if self.process is None:
            return
        try:
            descendants = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        for child in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(descendants, timeout=STOP_TIMEOUT)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def query(self, sql: str, *parameters: object) -> list[tuple]:
        """Run one query on the server's SQLite file and return its rows."""
        with contextlib.closing(sqlite3.connect(self.database, timeout=30)) as db:
            return db.execute(sql, parameters).fetchall()

    def task_state(self, task_id: str) -> str | None:
        rows = self.query(
            "SELECT state FROM django_integration_migrationtask WHERE task_id = ?",
            task_id,
        )
        return str(rows[0][0]) if rows else None
