"""Suite-wide set-up: the back end the Django tests run on, and what it needs."""

from __future__ import annotations

import pytest

from tests import services
from tests.settings import BACKEND


def pytest_report_header(config: pytest.Config) -> list[str]:
    if BACKEND == "services":
        where = f"PostgreSQL {services.POSTGRES_URL}, Redis {services.REDIS_URL}"
    else:
        where = "SQLite and the in-memory channel layer"
    return [f"Django tests run on: {where}"]


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if BACKEND != "services":
        return
    missing = []
    if not services.postgres_available():
        missing.append(f"PostgreSQL at {services.POSTGRES_URL}")
    if not services.redis_available():
        missing.append(f"Redis at {services.REDIS_URL}")
    if not missing:
        return

    reason = (
        f"{' and '.join(missing)} not reachable: start them, or set "
        "MIGRATION_TEST_POSTGRES / MIGRATION_TEST_REDIS"
    )
    if services.REQUIRE_SERVICES:
        raise pytest.UsageError(f"{reason} (MIGRATION_TEST_REQUIRE_SERVICES=1)")
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))
