"""The web process is killed with SIGKILL while it supervises a task."""

from __future__ import annotations

import time

import psutil
import pytest

from tests.faults.checks import numbered_lines
from tests.faults.clients import http_client
from tests.faults.harness import start_job
from tests.faults.servers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

#: Seconds within which everything the killed web process started must be gone.
ORPHAN_DEADLINE = 5.0
HEARTBEAT_INTERVAL = 0.5
LOST_AFTER = 2.0
SETTINGS = {"HEARTBEAT_INTERVAL": HEARTBEAT_INTERVAL, "LOST_AFTER": LOST_AFTER}


def kill_web_mid_task(web, sessions, database, task_id, stop_file):
    """Start a job with a grandchild, then SIGKILL the web process supervising it.

    Returns the processes the web process had started, their command lines, and
    the seconds until none of them ran any more (at most ``ORPHAN_DEADLINE``).
    """
    server = web.start(**SETTINGS)
    start_job(
        server,
        sessions["owner"],
        task_id,
        "log_until_stopped_with_grandchild",
        stop_file=str(stop_file),
        interval=0.02,
    )
    pids = wait_for(lambda: _job_pids(database, task_id), 30, "the job's pids")
    wait_for(
        lambda: len(numbered_lines(database.messages(task_id))) >= 20,
        30,
        "20 stored lines",
    )
    descendants = server.descendants()
    descendant_pids = {process.pid for process in descendants}
    assert set(pids) <= descendant_pids, (
        f"job pids {pids} are not among the web process's descendants "
        f"{sorted(descendant_pids)}"
    )

    commands = [_command(process) for process in descendants]

    server.kill()
    killed_at = time.monotonic()
    while _alive(descendants) and time.monotonic() - killed_at < ORPHAN_DEADLINE:
        time.sleep(0.05)
    return descendants, commands, time.monotonic() - killed_at


def test_web_process_sigkill_ends_children(
    web, sessions, database, task_id, stop_file, figures
):
    """Children and grandchildren die within seconds of their web process."""
    descendants, commands, gone_after = kill_web_mid_task(
        web, sessions, database, task_id, stop_file
    )
    survivors = [(process.pid, process.name()) for process in _alive(descendants)]
    figures.update(
        descendants_killed=len(descendants),
        descendant_commands=commands,
        all_gone_after_seconds=round(gone_after, 2),
    )
    assert not survivors, (
        f"{ORPHAN_DEADLINE} s after SIGKILL of the web process these descendants "
        f"still run: {survivors}"
    )


def test_restarted_web_process_marks_lost(
    web, sessions, database, task_id, stop_file, figures
):
    """A task of a killed web process becomes lost, its stored stream intact."""
    kill_web_mid_task(web, sessions, database, task_id, stop_file)
    rows_at_kill = database.messages(task_id)

    restarted = web.start(**SETTINGS)
    lost_deadline = LOST_AFTER + 10 * HEARTBEAT_INTERVAL + 10
    with http_client(restarted.base_url, sessions["owner"]) as client:
        status = wait_for(
            lambda: _status_if_final(client, task_id),
            lost_deadline,
            f"task {task_id} marked lost by the restarted web process",
            interval=0.25,
        )
    assert status["state"] == "lost"

    rows = database.messages(task_id)
    assert rows[: len(rows_at_kill)] == rows_at_kill, "stored messages changed"
    seqs = [row["seq"] for row in rows]
    assert seqs == list(range(1, len(rows) + 1))
    numbers = numbered_lines(rows)
    assert numbers == list(range(1, len(numbers) + 1))
    figures.update(messages_checked=len(rows))


def _job_pids(database, task_id):
    for row in database.messages(task_id):
        if row["message"] == "processes":
            return [row["options"]["child_pid"], row["options"]["grandchild_pid"]]
    return None


def _command(process: psutil.Process) -> str:
    """Return the start of a process's command line, or its pid if it is gone."""
    try:
        return " ".join(process.cmdline())[:80]
    except psutil.Error:
        return f"pid {process.pid}"


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Return the processes still running; a zombie waiting for its reaper is not."""
    alive = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def _status_if_final(client, task_id):
    response = client.get(f"/migrations/tasks/{task_id}/status/")
    if response.status_code != 200:
        return None
    status = response.json()
    return status if status["state"] not in ("queued", "running") else None
