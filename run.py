#!/usr/bin/env python3
"""Set up a virtual environment and run the demo or the test suite.

    python3 run.py demo     # install, migrate, start Daphne, print the URL
    python3 run.py test     # install, run every test on both back ends

Only the standard library is used here, so this works on a fresh Python 3.11+.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import venv
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".installed"
MINIMUM_PYTHON = (3, 11)
#: Seconds the demo server gets to exit after Ctrl-C or SIGTERM.
STOP_GRACE_SECONDS = 10.0


def main() -> int:
    if sys.version_info < MINIMUM_PYTHON:
        sys.exit(
            f"Python {sys.version.split()[0]} is too old: run this with Python "
            f"{'.'.join(map(str, MINIMUM_PYTHON))} or newer."
        )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo web app with Daphne")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on")
    demo.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    test = commands.add_parser("test", help="run the test suite")
    test.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        help="paths and options passed on to pytest, such as: tests/worker -x",
    )
    arguments = parser.parse_args()

    python = ensure_environment()
    if arguments.command == "demo":
        return run_demo(python, arguments.host, arguments.port)
    return run_tests(python, arguments.pytest_args)


def venv_python() -> Path:
    folder = "Scripts" if os.name == "nt" else "bin"
    return VENV / folder / ("python.exe" if os.name == "nt" else "python")


def ensure_environment() -> Path:
    """Create .venv and install the project with its test extras when needed."""
    python = venv_python()
    if not python.exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)

    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return python

    print("Installing the project and its test dependencies ...", flush=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[test,dev]"], check=True)
    STAMP.write_text(wanted)
    return python


def run_demo(python: Path, host: str, port: int) -> int:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "demo.settings"}
    manage = [str(python), str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True)
    subprocess.run([*manage, "create_demo_user"], env=env, check=True)

    if not port_is_free(host, port):
        sys.exit(f"Port {port} on {host} is in use: pass --port with a free port.")
    print(f"\nOpen http://{host}:{port}/ in your browser (Ctrl-C stops the demo).\n")
    daphne = [str(python), "-m", "daphne", "-b", host, "-p", str(port)]
    return run_until_stopped([*daphne, "demo.asgi:application"], env)


def run_until_stopped(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` and stop it with SIGTERM when SIGINT, SIGTERM or SIGHUP arrives.

    The child runs in its own process group, so Ctrl-C reaches it only through
    this process. It always gets SIGTERM, because a process started with
    SIGINT ignored (as a background job of a script is) passes that on to
    Daphne, and Twisted then leaves SIGINT ignored. The child gets
    STOP_GRACE_SECONDS to exit before it is killed. Returns its exit code, or
    0 when it stopped because of a signal.
    """
    posix = os.name != "nt"
    child = subprocess.Popen(command, env=env, process_group=0 if posix else None)
    stop_requested_at: float | None = None

    def forward(signum: int, frame: object) -> None:
        nonlocal stop_requested_at
        stop_requested_at = stop_requested_at or time.monotonic()
        if child.poll() is None:
            child.terminate()

    previous = {
        signum: signal.signal(signum, forward)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        code = wait_for_exit(child, lambda: stop_requested_at)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0 if stop_requested_at is not None else code


def wait_for_exit(
    child: subprocess.Popen[bytes], stop_requested_at: Callable[[], float | None]
) -> int:
    """Wait for ``child``, killing it STOP_GRACE_SECONDS after a stop request."""
    while True:
        try:
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            since = stop_requested_at()
            if since is not None and time.monotonic() - since > STOP_GRACE_SECONDS:
                print("The server did not stop in time: killing it.", flush=True)
                child.kill()


def port_is_free(host: str, port: int) -> bool:
    """Return whether a server can listen on ``host:port`` now.

    SO_REUSEADDR matches how Daphne (Twisted) listens, so sockets of a stopped
    demo that linger in TIME_WAIT do not count as in use.
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def run_tests(python: Path, pytest_args: list[str]) -> int:
    """Run the suite on SQLite and the in-memory layer, then the Django tests on
    PostgreSQL and Redis, and print one total line for both runs."""
    results = Path(tempfile.mkdtemp(prefix="migration-tests-"))
    runs = [
        ("SQLite and the in-memory channel layer", "default", []),
        (
            "PostgreSQL and channels-redis",
            "services",
            ["tests/django_integration", "tests/demo"],
        ),
    ]
    codes = []
    for title, backend, paths in runs:
        missing = missing_services() if backend == "services" else []
        if missing and not pytest_args:
            codes.append(report_missing_services(title, missing))
            continue
        print(f"\n=== Tests on {title} ===", flush=True)
        env = {**os.environ, "MIGRATION_TEST_BACKEND": backend}
        report = results / f"{backend}.xml"
        command = [str(python), "-m", "pytest", f"--junitxml={report}"]
        command += pytest_args or paths
        codes.append(subprocess.run(command, cwd=ROOT, env=env).returncode)

    print_total(results)
    shutil.rmtree(results, ignore_errors=True)
    # pytest exits with 5 when a selection contains no test, which is no failure here.
    return max((code for code in codes if code != 5), default=0)


def missing_services() -> list[str]:
    """Name the services of the second run that do not accept connections."""
    services = [
        ("PostgreSQL", "MIGRATION_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test"),
        ("Redis", "MIGRATION_TEST_REDIS", "redis://127.0.0.1:6379/0"),
    ]
    missing = []
    for name, variable, default in services:
        url = os.environ.get(variable, default)
        parts = urlsplit(url)
        try:
            address = (parts.hostname or "127.0.0.1", parts.port or 0)
            with socket.create_connection(address, timeout=1):
                pass
        except (OSError, ValueError):
            missing.append(f"{name} at {url} (set {variable})")
    return missing


def report_missing_services(title: str, missing: list[str]) -> int:
    """Say why the run on ``title`` is skipped; fail under CI, which needs it."""
    print(f"\n=== Tests on {title}: SKIPPED ===")
    print(f"Not reachable: {'; '.join(missing)}.")
    if os.environ.get("MIGRATION_TEST_REQUIRE_SERVICES") == "1":
        print("MIGRATION_TEST_REQUIRE_SERVICES=1 forbids skipping them.")
        return 1
    print("Start them, or point the variables at running servers, to run these.")
    return 0


def print_total(results: Path) -> None:
    passed = failed = skipped = 0
    for report in results.glob("*.xml"):
        for suite in ET.parse(report).getroot().iter("testsuite"):
            total = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skip = int(suite.get("skipped", 0))
            passed += total - bad - skip
            failed += bad
            skipped += skip
    print(f"\ntotal: {passed} passed, {failed} failed, {skipped} skipped")


if __name__ == "__main__":
    sys.exit(main())
