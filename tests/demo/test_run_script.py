"""The demo launcher in run.py: the port check and stopping the server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import run

REPOSITORY = Path(__file__).resolve().parents[2]


def test_port_in_use_while_listening():
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert not run.port_is_free("127.0.0.1", server.getsockname()[1])


def test_port_free_with_time_wait_only():
    """A port whose only sockets are in TIME_WAIT counts as free."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        # The side that closes first keeps the connection in TIME_WAIT.
        accepted.close()
        client.close()

    # Without SO_REUSEADDR the TIME_WAIT socket blocks the port.
    with socket.socket() as plain, pytest.raises(OSError, match="already in use"):
        plain.bind(("127.0.0.1", port))
    assert run.port_is_free("127.0.0.1", port)


LAUNCHER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {repository!r})
    import run
    if {ignore_sigint!r}:
        # A background job of a shell script starts so, and the server inherits it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = [
        sys.executable, "-c",
        "import os, sys, time; "
        "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)",
        {pid_file!r},
    ]
    sys.exit(run.run_until_stopped(server, dict(os.environ)))
    """
)


@pytest.fixture(params=[False, True], ids=["sigint-default", "sigint-ignored"])
def launcher(request, tmp_path):
    """run_until_stopped in its own process, with a child that sleeps."""
    pid_file = tmp_path / "server.pid"
    script = LAUNCHER.format(
        repository=str(REPOSITORY),
        pid_file=str(pid_file),
        ignore_sigint=request.param,
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        yield process, pid_file
    finally:
        for pid in [process.pid, *_pid_in(pid_file)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()


def _pid_in(pid_file):
    text = pid_file.read_text() if pid_file.exists() else ""
    return [int(text)] if text else []


def _wait_for_pid(pid_file, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not _pid_in(pid_file):
        assert time.monotonic() < deadline, "the server child never started"
        time.sleep(0.05)
    return _pid_in(pid_file)[0]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_server_child(launcher, signum):
    process, pid_file = launcher
    server_pid = _wait_for_pid(pid_file)

    process.send_signal(signum)

    # Well inside the launcher's 10 s grace, so the server stopped on SIGTERM.
    assert process.wait(timeout=8) == 0
    assert not psutil.pid_exists(server_pid)
