"""Fixtures of the fault tests: servers of their own, the web processes, the users.

The shared PostgreSQL and Redis on the standard ports are never stopped: these
tests start a PostgreSQL cluster (once per session) and a Redis server (once per
test) on free loopback ports, and break those.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import (
    UNUSED_REDIS_URL,
    Database,
    WebFactory,
    fault_env,
    run_django_tool,
)
from tests.faults.servers import PostgresServer, RedisServer, postgres_bindir
from tests.services import missing_service

FAULT_DATABASE = "faults"


@pytest.fixture(scope="session")
def fault_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="session")
def redis_binary() -> str:
    binary = os.environ.get("MIGRATION_TEST_REDIS_SERVER") or shutil.which(
        "redis-server"
    )
    if binary is None:
        missing_service(
            "redis-server was not found: install it (Debian: apt-get install "
            "redis-server) or set MIGRATION_TEST_REDIS_SERVER to its path"
        )
    assert binary is not None
    return binary


@pytest.fixture(scope="session")
def postgres(fault_workdir: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of the fault tests; a test that stops it starts it again."""
    bindir = postgres_bindir()
    if bindir is None:
        missing_service(
            "the PostgreSQL server programs (initdb, postgres) were not found: "
            "install them (Debian: apt-get install postgresql) or set "
            "MIGRATION_TEST_PG_BINDIR to their folder"
        )
    assert bindir is not None
    with PostgresServer(bindir, fault_workdir) as server:
        yield server


@pytest.fixture(scope="session")
def database_url(postgres: PostgresServer, fault_workdir: Path) -> str:
    """The URL of the migrated fault-test database."""
    return postgres.create_database(FAULT_DATABASE)


@pytest.fixture(scope="session")
def sessions(database_url: str, fault_workdir: Path) -> dict[str, str]:
    """Session keys of the users of ``tests.faults.django_tool.USERS``."""
    output = run_django_tool(
        fault_env(fault_workdir, database_url, UNUSED_REDIS_URL), ["setup"]
    )
    return dict(output)


@pytest.fixture
def redis(redis_binary: str, fault_workdir: Path) -> Iterator[RedisServer]:
    """A Redis server of this test alone, free to stop and pause."""
    with RedisServer(fault_workdir, redis_binary) as server:
        yield server


@pytest.fixture
def database(postgres: PostgresServer, database_url: str) -> Iterator[Database]:
    """Queries on the fault-test database; the cluster runs again after the test."""
    postgres.ensure_running()
    yield Database(database_url)
    postgres.ensure_running()


@pytest.fixture
def web(
    fault_workdir: Path,
    database_url: str,
    sessions: dict[str, str],
    redis: RedisServer,
    database: Database,
) -> Iterator[WebFactory]:
    factory = WebFactory(fault_workdir, database_url, redis)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def task_id(request: pytest.FixtureRequest) -> str:
    """A task id no other test, run or engineer uses."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name[:40])
    return f"{name}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def stop_file(tmp_path: Path) -> Path:
    """The file whose creation ends a ``*_until_stopped`` job."""
    return tmp_path / "stop"


_FIGURES = pytest.StashKey[dict[str, dict[str, Any]]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Figures this test measured, printed in the session's terminal summary."""
    collected = request.config.stash.setdefault(_FIGURES, {})
    return collected.setdefault(request.node.name, {})


def pytest_terminal_summary(
    terminalreporter: Any, exitstatus: int, config: pytest.Config
) -> None:
    collected = config.stash.get(_FIGURES, {})
    if not any(collected.values()):
        return
    terminalreporter.section("fault test figures")
    for test_name, values in collected.items():
        if values:
            terminalreporter.line(f"{test_name}: {json.dumps(values, sort_keys=True)}")
