"""Measure the product against logging from inside the web process.

    python bench/run.py [--quick] [--json out.json]

Creates the PostgreSQL database named by ``MIGRATION_BENCH_POSTGRES`` (default
``bench_migration``) if it is missing and migrates it. Then it starts Daphne with
the bench settings on a free loopback port, runs every figure for the supervised
product and for the in-process baseline, and prints one table with the machine
and the versions. BENCHMARKS.md says what each figure measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    # Set before the settings are imported, and inherited by Daphne.
    os.environ["MIGRATION_BENCH_CHANNEL_LAYER"] = arguments.channel_layer
    from bench import settings

    results = run(arguments, settings.POSTGRES_URL, settings.REDIS_URL)
    print_results(results)
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(results, indent=2, default=str))
    return 0 if not results["problems"] else 1


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="run smaller sizes, in under a minute"
    )
    size.add_argument(
        "--tiny", action="store_true", help="run the smallest sizes, for the smoke test"
    )
    parser.add_argument(
        "--channel-layer",
        choices=("redis", "pubsub"),
        default="redis",
        help="channels-redis layer: RedisChannelLayer (redis, the default) or "
        "RedisPubSubChannelLayer (pubsub)",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="also write the results as JSON to PATH"
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the folder with Daphne's output and the job statistics",
    )
    return parser.parse_args(argv)


def run(
    arguments: argparse.Namespace, postgres_url: str, redis_url: str
) -> dict[str, Any]:
    from bench import database, report

    size_name = "tiny" if arguments.tiny else "quick" if arguments.quick else "full"
    database.ensure_database(postgres_url)

    import django

    django.setup()
    session_id = database.prepare()

    results: dict[str, Any] = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "size": size_name,
        "channel_layer": arguments.channel_layer,
        "machine": report.machine(),
        "load_before": report.other_load(),
        "versions": report.versions(postgres_url, redis_url),
    }
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="migration-bench-"))
    results["figures"], results["sizes"] = asyncio.run(
        _measure(size_name, session_id, workdir, postgres_url)
    )
    results["seconds"] = round(time.monotonic() - started, 1)
    results["load_average_after"] = report.machine()["load_average"]
    results["load_after"] = report.other_load()
    results["problems"] = report.problems(results["figures"])
    if arguments.keep_logs or results["problems"]:
        results["workdir"] = str(workdir)
    else:
        _remove(workdir)
    return results


async def _measure(
    size_name: str, session_id: str, workdir: Path, postgres_url: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    import dataclasses

    from bench import scenarios, server
    from django_integration.models import MigrationLog

    sizes = scenarios.SIZES[size_name]
    web_log = workdir / "daphne.log"
    with server.running_daphne(web_log) as (base_url, web):
        async with scenarios.Bench(
            base_url,
            session_id,
            web,
            web_log,
            workdir,
            postgres_url,
            MigrationLog._meta.db_table,
        ) as bench:
            try:
                figures = await scenarios.run_suite(bench, sizes, say=_say)
            except Exception:
                _say(f"the run failed; the end of Daphne's output in {web_log}:")
                tail = web_log.read_text(errors="replace").splitlines()[-40:]
                print("\n".join(tail), file=sys.stderr)
                raise
    return figures, dataclasses.asdict(sizes)


def _say(text: str) -> None:
    print(f"  ... {text}", file=sys.stderr, flush=True)


def _remove(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def print_results(results: dict[str, Any]) -> None:
    from bench import report, scenarios

    sizes = scenarios.Sizes(**results["sizes"])
    machine = results["machine"]
    print(report.format_table(report.table_rows(results["figures"], sizes)))
    print()
    print(
        f"machine: {machine['cores']} cores, {machine['cpu_model']}, "
        f"{machine['memory_gib']} GiB, Linux {machine['kernel']}; load average "
        f"{machine['load_average']} before, {results['load_average_after']} after"
    )
    for when in ("before", "after"):
        load = results[f"load_{when}"]
        print(
            f"other load {when} the run: CPUs {load['cpu_busy_percent']:.0f}% busy"
            + "".join(f"; {line}" for line in load["busy_processes"])
        )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
    print(f"command: {results['command']}  ({results['size']} sizes, channel "
          f"layer {results['channel_layer']}, {results['seconds']} s)")  # fmt: skip
    for problem in results["problems"]:
        print(f"PROBLEM: {problem}")
    if "workdir" in results:
        print(f"Daphne's output and the job statistics: {results['workdir']}")


if __name__ == "__main__":
    sys.exit(main())
