"""Jobs that attack the supervisor from the child: its forkserver, its groups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from worker import logging_helper


def log_until_file_exists(path: str, before: int, after: int) -> str:
    """Log ``before`` messages, wait for ``path`` to appear, then log ``after``."""
    for index in range(before):
        logging_helper(f"before {index}")
    deadline = time.monotonic() + 60
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    for index in range(after):
        logging_helper(f"after {index}")
    return "done"


def kill_forkserver() -> str:
    """Kill the process that forked this one: the forkserver."""
    logging_helper("killing my parent")
    os.kill(os.getppid(), signal.SIGKILL)
    return "killed"


def start_detached_grandchild_and_sleep(pid_file: str) -> None:
    """Start a grandchild in a session of its own that ignores SIGTERM, then sleep."""
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "time.sleep(60)"
    )
    grandchild = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    with open(pid_file + ".tmp", "w") as stream:
        stream.write(f"{os.getpid()} {grandchild.pid}")
    os.replace(pid_file + ".tmp", pid_file)
    logging_helper("detached grandchild started")
    time.sleep(60)
