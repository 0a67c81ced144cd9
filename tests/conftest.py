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
        _deselect_services_backend_tests(config, items)
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


def _deselect_services_backend_tests(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Leave out tests that only mean something on a shared database server.

    ``run.py test`` runs them in its second pass, on PostgreSQL and Redis.
    """
    kept, left_out = [], []
    for item in items:
        marked = item.get_closest_marker("services_backend") is not None
        (left_out if marked else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
