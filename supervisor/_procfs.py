"""Reading the process table from ``/proc`` (Linux): start times and descendants.

Elsewhere, and where ``/proc`` cannot be read, every function here finds
nothing, and the supervisor falls back to process groups alone.
"""

from __future__ import annotations

import collections
import contextlib
import os
from typing import NamedTuple

__all__ = ["ProcessId", "find_descendants", "is_running", "read_start_time"]

PROC = "/proc"


class _Stat(NamedTuple):
    """The fields of ``/proc/<pid>/stat`` the supervisor uses."""

    state: str
    parent: int
    group: int
    start_time: int


class ProcessId(NamedTuple):
    """A process identified by pid and start time, so a reused pid does not match."""

    pid: int
    #: Clock ticks after boot at which the process started.
    start_time: int
    #: Its process group when it was seen.
    group: int = 0

    def send_signal(self, signum: int) -> bool:
        """Send ``signum`` unless the pid now belongs to another process."""
        if not is_running(self):
            return False
        try:
            os.kill(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
        return True


def _read_stat(pid: int) -> _Stat | None:
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as file:
            text = file.read()
    except OSError:
        return None
    # The command name in brackets may contain spaces and brackets, so the
    # fields are counted from the last closing bracket.
    fields = text[text.rfind(b")") + 2 :].split()
    try:
        return _Stat(
            state=fields[0].decode("ascii", "replace"),
            parent=int(fields[1]),
            group=int(fields[2]),
            start_time=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def read_start_time(pid: int) -> int | None:
    """Return the start time of process ``pid``, or None if it cannot be read."""
    stat = _read_stat(pid)
    return None if stat is None else stat.start_time


def is_running(process: ProcessId) -> bool:
    """Return whether ``process`` exists and is not a zombie."""
    stat = _read_stat(process.pid)
    if stat is None or stat.start_time != process.start_time:
        return False
    return stat.state not in ("Z", "X", "x")


def find_descendants(pid: int) -> list[ProcessId]:
    """Return the processes below ``pid`` in the parent tree, in any group or session.

    A process whose parent exited was reparented (to init or a subreaper) and is
    no longer found here.
    """
    children: dict[int, list[tuple[int, _Stat]]] = collections.defaultdict(list)
    with contextlib.suppress(OSError):
        for entry in os.scandir(PROC):
            if not entry.name.isdigit():
                continue
            stat = _read_stat(int(entry.name))
            if stat is not None:
                children[stat.parent].append((int(entry.name), stat))

    found: list[ProcessId] = []
    parents = [pid]
    while parents:
        for child, stat in children.get(parents.pop(), ()):
            found.append(ProcessId(child, stat.start_time, stat.group))
            parents.append(child)
    return found
