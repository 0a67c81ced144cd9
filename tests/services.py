"""Find the PostgreSQL, Redis and Chromium the tests may use.

Tests that need one of them skip, naming what is missing and how to provide it,
unless ``MIGRATION_TEST_REQUIRE_SERVICES=1`` is set (as CI does), in which case
a missing service fails the test instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get(
    "MIGRATION_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("MIGRATION_TEST_REDIS", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("MIGRATION_TEST_REQUIRE_SERVICES") == "1"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


@functools.cache
def postgres_available() -> bool:
    return _reachable(POSTGRES_URL, 5432)


@functools.cache
def redis_available() -> bool:
    return _reachable(REDIS_URL, 6379)


@functools.cache
def chromium_path() -> str | None:
    configured = os.environ.get("MIGRATION_TEST_CHROMIUM")
    if configured:
        return configured if os.path.exists(configured) else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_service(reason: str) -> None:
    """Skip the current test for a missing service, or fail it under CI."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (MIGRATION_TEST_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(reason)


def require_postgres() -> str:
    if not postgres_available():
        missing_service(
            f"PostgreSQL is not reachable at {POSTGRES_URL}; start it or set "
            "MIGRATION_TEST_POSTGRES"
        )
    return POSTGRES_URL


def require_redis() -> str:
    if not redis_available():
        missing_service(
            f"Redis is not reachable at {REDIS_URL}; start it or set "
            "MIGRATION_TEST_REDIS"
        )
    return REDIS_URL


def require_chromium() -> str:
    path = chromium_path()
    if path is None:
        missing_service(
            "Chromium was not found; install it (Debian: apt-get install chromium) "
            "or set MIGRATION_TEST_CHROMIUM to its path"
        )
    assert path is not None
    return path
