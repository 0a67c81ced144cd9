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
import socket
import subprocess
import sys
import tempfile
import venv
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".installed"
MINIMUM_PYTHON = (3, 11)


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
    test.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
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
    try:
        return subprocess.run([*daphne, "demo.asgi:application"], env=env).returncode
    except KeyboardInterrupt:
        return 0


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
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
        print(f"\n=== Tests on {title} ===", flush=True)
        env = {**os.environ, "MIGRATION_TEST_BACKEND": backend}
        report = results / f"{backend}.xml"
        command = [str(python), "-m", "pytest", f"--junitxml={report}"]
        command += pytest_args or paths
        codes.append(subprocess.run(command, cwd=ROOT, env=env).returncode)

    print_total(results)
    shutil.rmtree(results, ignore_errors=True)
    # pytest exits with 5 when a selection holds no test, which is no failure here.
    return max((code for code in codes if code != 5), default=0)


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
