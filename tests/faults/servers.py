"""Loopback Redis, PostgreSQL and Daphne processes that fault tests start and break.

Each server runs as a child of the test process on a free port of 127.0.0.1, so a
test can stop, pause or kill it without touching the shared services on the
standard ports. Every class is a context manager that kills and reaps its
process on exit, even when the test failed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Call ``predicate`` until it returns a true value, and return that value.

    Raises ``TimeoutError`` naming ``what`` when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def port_accepts(port: int) -> bool:
    """Tell whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a server's log file, for a failure message."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def kill_tree(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate a process and every descendant still running, then reap it."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(descendants, timeout=timeout)


class RedisServer:
    """A throwaway ``redis-server`` without persistence on a loopback port.

    ``stop()`` and ``start()`` give a real outage: clients see refused
    connections, and the data held in memory (channel-layer groups included) is
    gone when the server comes back. ``pause()`` freezes it with SIGSTOP instead,
    so clients see a server that accepts connections and never replies.
    """

    def __init__(self, workdir: Path, binary: str) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / f"redis-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.log_path),
        ]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        wait_for(
            self._ready, 10, f"Redis on port {self.port}\n{log_tail(self.log_path)}"
        )

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"redis-server exited with {self.process.returncode}:\n"
                f"{log_tail(self.log_path)}"
            )
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
            kill_tree(self.process)
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def postgres_bindir() -> Path | None:
    """Return the newest PostgreSQL server ``bin`` folder installed, if any."""
    configured = os.environ.get("MIGRATION_TEST_PG_BINDIR")
    if configured:
        return Path(configured) if (Path(configured) / "initdb").exists() else None
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: (
            int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresServer:
    """A throwaway PostgreSQL cluster on a loopback port, with trust authentication.

    PostgreSQL refuses to run as root, so under root the cluster belongs to the
    ``postgres`` OS user and lives in a folder of its own under the system temp
    directory (pytest's ``tmp_path`` folders are private to root). Durability is
    switched off because the data is thrown away at the end of the session.
    """

    def __init__(self, bindir: Path, logdir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.log_path = logdir / f"postgres-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._run_as: dict[str, Any] = {}
        self.datadir = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        if os.geteuid() == 0:
            self._run_as = {"user": "postgres", "group": "postgres", "extra_groups": []}
            shutil.chown(self.datadir, "postgres", "postgres")
        self.datadir.chmod(0o700)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        command = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir / "data"),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]
        result = subprocess.run(
            command,
            capture_output=True,
            cwd=self.datadir,
            check=False,
            **self._run_as,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed with exit code {result.returncode}:\n"
                f"{result.stderr.decode(errors='replace')}"
            )

    def start(self) -> None:
        command = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.datadir / "data"),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=100",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.datadir,
                **self._run_as,
            )
        wait_for(self._ready, 30, f"PostgreSQL on port {self.port}")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"postgres exited with {self.process.returncode}:\n"
                f"{log_tail(self.log_path)}"
            )
        result = subprocess.run(
            [
                str(self.bindir / "pg_isready"),
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            check=False,
        )
        return result.returncode == 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Shut the cluster down in fast mode: sessions are ended, data is kept."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                kill_tree(self.process)
        self.process = None

    def ensure_running(self) -> None:
        if not self.running:
            self.start()

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> PostgresServer:
        self.init()
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)


class DaphneServer:
    """A real Daphne process serving the fault-test project on a loopback port.

    ``env`` adds to the environment the settings module reads (the Redis and
    PostgreSQL URLs, the supervisor's limits). ``kill()`` sends SIGKILL to
    Daphne alone, as an out-of-memory killer or a crash would, leaving what it
    started to clean up after itself.
    """

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.log_path = workdir / f"daphne-{self.port}.log"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
            ).rstrip(os.pathsep),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self._descendants: set[psutil.Process] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--application-close-timeout",
            "5",
            "demo.asgi:application",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=REPO_ROOT,
                env=self.env,
                start_new_session=True,
            )
        wait_for(self._ready, 60, f"Daphne on port {self.port}")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"Daphne exited with {self.process.returncode}:\n{self.log()}"
            )
        return port_accepts(self.port)

    def log(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines)

    def descendants(self) -> list[psutil.Process]:
        """Return Daphne's live descendants, and remember them for clean-up."""
        if self.process is None or self.process.poll() is not None:
            return []
        try:
            found = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        self._descendants.update(found)
        return found

    def kill(self) -> None:
        """Send SIGKILL to Daphne itself and reap it."""
        assert self.process is not None
        self.descendants()
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        self.descendants()
        if self.process is not None:
            kill_tree(self.process)
        for process in self._descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(list(self._descendants), timeout=10)
        self._descendants.clear()

    def __enter__(self) -> DaphneServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
