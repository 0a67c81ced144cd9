"""Helpers of the fault tests: processes on the fault-test settings, their
database, and waiting without blocking the event loop."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.faults.clients import http_client
from tests.faults.servers import REPO_ROOT, DaphneServer, RedisServer

#: The channel layer URL of processes that never send to it.
UNUSED_REDIS_URL = "redis://127.0.0.1:1/0"


def fault_env(
    workdir: Path,
    database_url: str,
    redis_url: str,
    supervisor: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Return the environment of a process on the fault-test settings."""
    return {
        "DJANGO_SETTINGS_MODULE": "tests.faults.settings",
        "DJANGO_SECRET_KEY": "fault-tests-only-not-secret",
        "MIGRATION_DEMO_VAR": str(workdir / "var"),
        "FAULTS_DATABASE_URL": database_url,
        "FAULTS_REDIS_URL": redis_url,
        "FAULTS_SUPERVISOR": json.dumps(supervisor or {}),
    }


def run_django_tool(env: dict[str, str], argv: list[str]) -> Any:
    """Run ``tests.faults.django_tool`` with ``env`` added; return its JSON output."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.faults.django_tool", *argv],
        capture_output=True,
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        timeout=90,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"django_tool {argv[:2]} failed with exit code {result.returncode}:\n"
            f"{result.stderr.decode(errors='replace')[-4000:]}"
        )
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


class Database:
    """Reads of the app's tables, straight through psycopg."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.url, row_factory=dict_row, connect_timeout=5) as c:
            return c.execute(sql, params).fetchall()

    def messages(self, task_id: str) -> list[dict[str, Any]]:
        return self.query(
            "SELECT seq, event, message, message_type, progress, options "
            "FROM django_integration_migrationlog WHERE task_id = %s ORDER BY seq",
            task_id,
        )

    def task(self, task_id: str) -> dict[str, Any] | None:
        rows = self.query(
            "SELECT * FROM django_integration_migrationtask WHERE task_id = %s",
            task_id,
        )
        return rows[0] if rows else None


class WebFactory:
    """Starts Daphne processes on the fault-test settings and stops them all."""

    def __init__(
        self, workdir: Path, database_url: str, redis: RedisServer | None
    ) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.redis = redis
        self.servers: list[DaphneServer] = []

    def start(self, **supervisor: Any) -> DaphneServer:
        """Start a web process whose ``MIGRATION_SUPERVISOR`` has ``supervisor``."""
        redis_url = self.redis.url if self.redis else UNUSED_REDIS_URL
        env = fault_env(self.workdir, self.database_url, redis_url, supervisor)
        server = DaphneServer(self.workdir, env)
        self.servers.append(server)
        server.start()
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


def start_job(
    server: DaphneServer,
    session: str,
    task_id: str,
    job: str,
    **kwargs: Any,
) -> dict[str, Any]:
    """Start ``tests.faults.jobs.<job>`` as ``task_id`` through the web process."""
    with http_client(server.base_url, session) as client:
        response = client.post(
            "/faults/start/", json={"task_id": task_id, "job": job, "kwargs": kwargs}
        )
    assert response.status_code == 200, (
        f"starting {job} as {task_id} failed: HTTP {response.status_code} "
        f"{response.text[:2000]}\n{server.log()}"
    )
    return dict(response.json()["status"])


async def wait_async(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Await ``predicate()`` becoming true without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        await asyncio.sleep(interval)
