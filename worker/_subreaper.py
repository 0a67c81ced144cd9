"""Keep the job's descendants below the child and kill them all (Linux only).

A child subreaper receives the orphans of its descendants instead of init, so a
process the job started stays in the child's parent tree after its own parent
exits, even if it left the child's process group (``setsid``, ``setpgid``).
Elsewhere both functions do nothing, and the process group is all there is.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import signal
import sys

__all__ = ["become_subreaper", "kill_descendants"]

#: From <linux/prctl.h>, Linux 3.4 and later.
PR_SET_CHILD_SUBREAPER = 36
PROC = "/proc"
#: Maximum number of walks of the process table, so a tree that keeps changing
#: cannot delay the kill of the process group that follows.
MAX_KILL_ROUNDS = 20

_IS_LINUX = sys.platform.startswith("linux")


def become_subreaper() -> None:
    """Make this process the parent of its descendants' orphans.

    Raises OSError when the C library has no ``prctl`` or the kernel rejects
    the request (before Linux 3.4, or in a sandbox that filters ``prctl``).
    """
    if not _IS_LINUX:
        return
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except AttributeError as exc:
        raise OSError("the C library has no prctl function") from exc
    # prctl is variadic, so each argument gets the C type the kernel reads.
    result = prctl(
        ctypes.c_int(PR_SET_CHILD_SUBREAPER),
        ctypes.c_ulong(1),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def kill_descendants(pid: int) -> None:
    """Send SIGKILL to every process below ``pid``, in any group or session.

    A killed process leaves its children to the nearest subreaper (``pid``
    itself after `become_subreaper`), so the walk repeats until it finds no
    process that it has not signalled, at most MAX_KILL_ROUNDS times. A
    process that is already gone (ESRCH) or that this user may not signal
    (EPERM, after a setuid program) is skipped.
    """
    if not _IS_LINUX:
        return
    signalled: set[int] = set()
    for _ in range(MAX_KILL_ROUNDS):
        new = [child for child in find_descendants(pid) if child not in signalled]
        if not new:
            return
        for child in new:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)
        signalled.update(new)


def find_descendants(pid: int) -> list[int]:
    """Return the pids below ``pid`` in the parent tree, parents first.

    The walk follows the parent pid of every ``/proc/<pid>/stat``. The kernel's
    ``/proc/<pid>/task/<tid>/children`` lists would be cheaper, but proc(5)
    says that they exist only with CONFIG_PROC_CHILDREN and may omit a child
    while a sibling exits, which is what happens while this module kills a
    tree. Where ``/proc`` cannot be read the list is empty.
    """
    children = _read_children()
    found: list[int] = []
    # A pid reused while /proc was read could close a loop in the links.
    seen = {pid}
    parents = collections.deque([pid])
    while parents:
        for child in children.get(parents.popleft(), ()):
            if child not in seen:
                seen.add(child)
                found.append(child)
                parents.append(child)
    return found


def _read_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    with contextlib.suppress(OSError):
        for entry in os.scandir(PROC):
            if not entry.name.isdigit():
                continue
            parent = _read_parent(entry.name)
            if parent is not None:
                children[parent].append(int(entry.name))
    return children


def _read_parent(pid: str) -> int | None:
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as file:
            text = file.read()
    except OSError:
        return None
    # The command name in brackets may contain spaces and brackets, so the
    # fields are counted from the last closing bracket: state, then parent pid.
    fields = text[text.rfind(b")") + 2 :].split()
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None
