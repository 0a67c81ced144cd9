"""Fixtures for the demo's tests: paths to the workbooks and the process runtime."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

# The same runtime fixture as the app's tests: reset before and after each test.
from tests.django_integration.conftest import runtime

__all__ = ["runtime"]

REPOSITORY = Path(__file__).resolve().parents[2]
SAMPLE = REPOSITORY / "demo" / "samples" / "small-sales.twb"
REAL_WORKBOOKS = REPOSITORY.parent / "shared" / "data" / "workbooks"


@pytest.fixture
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture
def real_workbooks() -> Path:
    """The folder of real Tableau workbooks kept beside the repository."""
    if not REAL_WORKBOOKS.is_dir():
        pytest.skip(f"the real workbooks are not at {REAL_WORKBOOKS}")
    return REAL_WORKBOOKS


@pytest.fixture
def unique_id(request: pytest.FixtureRequest) -> str:
    """A task id unique to this test and run, so parallel runs never collide."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name)[:40]
    return f"demo-{name}-{time.monotonic_ns() % 10**9}"
