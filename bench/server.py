"""The web process under test: Daphne serving the bench project, and a sampler
of its CPU time and memory."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bench_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment of the bench's processes: the repository on the
    path and the bench settings."""
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    python_path = os.pathsep.join(path for path in paths if path)
    return {
        **os.environ,
        "PYTHONPATH": python_path,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        **(extra or {}),
    }


@contextlib.contextmanager
def running_daphne(
    log_path: Path, application: str = "bench.asgi:application"
) -> Iterator[tuple[str, psutil.Process]]:
    """Start Daphne on a free loopback port; yield its base URL and process.

    Daphne and every child it left are killed and reaped on exit.
    """
    port = free_port()
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    command.append(application)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=bench_environment(), stdout=log, stderr=log
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base_url, process, log_path)
        yield base_url, psutil.Process(process.pid)
    finally:
        _stop(process)


def _wait_until_serving(
    base_url: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"Daphne exited with code {process.returncode} while starting; "
                f"its output is in {log}"
            )
        try:
            with urllib.request.urlopen(f"{base_url}/bench/ping/", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(
        f"Daphne did not respond at {base_url} within {STARTUP_TIMEOUT} s; "
        f"its output is in {log}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=5)


class ResourceSampler:
    """Sample the RSS of a process and of all its descendants in a thread."""

    def __init__(self, process: psutil.Process, interval: float = 0.05) -> None:
        self.process = process
        self.interval = interval
        self.peak_rss: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler")

    def __enter__(self) -> ResourceSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def _sample(self) -> None:
        try:
            processes = [self.process, *self.process.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for process in processes:
            try:
                rss = process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            if rss > self.peak_rss.get(process.pid, 0):
                self.peak_rss[process.pid] = rss


def cpu_seconds(process: psutil.Process) -> float:
    """Return the CPU time the process itself used, user plus system."""
    times = process.cpu_times()
    return times.user + times.system
