"""The benchmark harness runs end to end at its smallest sizes and counts every
message; the figures themselves are not checked here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.services import require_postgres, require_redis

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench_database() -> Iterator[str]:
    """Return the URL of a throw-away PostgreSQL database, dropped afterwards."""
    parts = urlsplit(require_postgres())
    name = f"bench_smoke_{uuid.uuid4().hex[:12]}"
    url = urlunsplit(parts._replace(path=f"/{name}"))
    yield url

    sys.path.insert(0, str(ROOT))
    from bench.database import drop_database

    drop_database(url)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(60)
def test_bench_tiny_delivers_every_message(bench_database: str, tmp_path: Path) -> None:
    redis_url = require_redis()
    output = tmp_path / "results.json"
    env = {
        **os.environ,
        "MIGRATION_BENCH_POSTGRES": bench_database,
        "MIGRATION_BENCH_REDIS": redis_url,
        "MIGRATION_BENCH_REDIS_PREFIX": f"benchsmoke{uuid.uuid4().hex[:8]}",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    completed = subprocess.run(
        [sys.executable, "bench/run.py", "--tiny", "--json", str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads(output.read_text())
    figures = results["figures"]
    assert results["problems"] == []
    for mode in ("supervised", "inprocess"):
        assert figures["one_job"][mode]["complete"]
        assert figures["paced"][mode]["complete"]
        assert figures["start"][mode]["finished"] == figures["start"][mode]["runs"]
    scale = figures["scale"]
    assert scale["delivered_clients"] == scale["expected"]
    assert scale["delivered_rows"] == scale["expected"]
    assert "| 2 " in completed.stdout
