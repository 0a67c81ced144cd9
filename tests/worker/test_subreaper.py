"""Processes the job starts die with the web process, even outside its group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.worker.childproc import ChildProcess
from worker._subreaper import find_descendants, kill_descendants

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        not sys.platform.startswith("linux"),
        reason="child subreapers and /proc exist on Linux only",
    ),
]

#: Seconds within which the watchdog must have killed everything.
KILL_TIMEOUT = 5.0
#: Seconds a new Python process may take to start on a busy machine.
START_TIMEOUT = 30.0

#: Runs as ``python -c SLEEPER PID_FILE MODE``. Mode ``plain`` stays in the
#: group, ``setsid`` starts a new session, and ``orphan`` forks, starts a new
#: session in the fork and lets the first process exit, as a daemon does.
SLEEPER = """
import os, sys, time
pid_file, mode = sys.argv[1], sys.argv[2]
if mode == "orphan" and os.fork():
    os._exit(0)
if mode != "plain":
    os.setsid()
with open(pid_file + ".tmp", "w") as file:
    file.write(str(os.getpid()))
os.replace(pid_file + ".tmp", pid_file)
time.sleep(60)
"""


#: Runs as ``python -c ROOT PID_DIR SLEEPER`` and starts one sleeper of each
#: of ROOT_MODES, each writing its pid to ``PID_DIR/<mode>.pid``.
ROOT = """
import subprocess, sys, time
pid_dir, sleeper = sys.argv[1], sys.argv[2]
for mode in ("plain", "setsid"):
    pid_file = f"{pid_dir}/{mode}.pid"
    subprocess.Popen([sys.executable, "-c", sleeper, pid_file, mode])
time.sleep(60)
"""
ROOT_MODES = ("plain", "setsid")


def start_grandchild_and_sleep(pid_file: str, mode: str) -> None:
    """Job: start a sleeper of ``mode`` and sleep until killed."""
    sleeper = subprocess.Popen([sys.executable, "-c", SLEEPER, pid_file, mode])
    if mode == "orphan":
        sleeper.wait()
    time.sleep(60)


@pytest.fixture
def pid_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder for pid files. Each sleeper named there is killed at the end."""
    path = tmp_path / f"sleepers-{uuid.uuid4().hex}"
    path.mkdir()
    yield path
    for pid_file in path.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            process = psutil.Process(int(pid_file.read_text()))
            if str(pid_file) in process.cmdline():
                process.kill()


def wait_for_sleeper(pid_file: Path) -> psutil.Process:
    deadline = time.monotonic() + START_TIMEOUT
    while not pid_file.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no pid in {pid_file} after {START_TIMEOUT} s")
        time.sleep(0.05)
    return psutil.Process(int(pid_file.read_text()))


def wait_until_gone(process: psutil.Process, timeout: float) -> bool:
    """Return whether ``process`` ended (a zombie counts) within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("mode", ["plain", "setsid", "orphan"])
def test_closed_alive_pipe_kills_sleeper(mode: str, pid_dir: Path) -> None:
    """The child and the process its job started die when the web process does."""
    pid_file = pid_dir / "sleeper.pid"
    job = f"{__name__}:start_grandchild_and_sleep"
    task_id = f"subreaper-{mode}-{uuid.uuid4().hex}"
    with ChildProcess(job, str(pid_file), mode, task_id=task_id) as child:
        sleeper = wait_for_sleeper(pid_file)
        sleeper_group = os.getpgid(sleeper.pid)
        sleeper_parent = sleeper.ppid()
        child.close_alive()
        exit_code = child.wait(timeout=KILL_TIMEOUT)
        sleeper_gone = wait_until_gone(sleeper, KILL_TIMEOUT)

    assert (sleeper_group == child.pid) == (mode == "plain")
    if mode == "orphan":
        # Without the subreaper, init would have adopted the orphan.
        assert sleeper_parent == child.pid
    assert exit_code == -signal.SIGKILL
    assert sleeper_gone
    assert child.stderr.data == b""


def test_kill_descendants_spares_root(pid_dir: Path) -> None:
    """Every process below the given pid dies in any session, but that pid lives."""
    root = subprocess.Popen(
        [sys.executable, "-c", ROOT, str(pid_dir), SLEEPER], start_new_session=True
    )
    try:
        sleepers = [wait_for_sleeper(pid_dir / f"{m}.pid") for m in ROOT_MODES]
        found = find_descendants(root.pid)
        kill_descendants(root.pid)
        ended = [wait_until_gone(sleeper, KILL_TIMEOUT) for sleeper in sleepers]
        root_exit = root.poll()
    finally:
        root.kill()
        root.wait()

    assert {sleeper.pid for sleeper in sleepers} <= set(found)
    assert root.pid not in found
    assert ended == [True] * len(ROOT_MODES)
    assert root_exit is None


def test_find_descendants_of_leaf_is_empty() -> None:
    leaf = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        found = find_descendants(leaf.pid)
    finally:
        leaf.kill()
        leaf.wait()

    assert found == []
