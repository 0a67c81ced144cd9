"""Stopping a child's process group: SIGTERM, a grace period, then SIGKILL."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

__all__ = ["signal_process_group", "terminate"]


def signal_process_group(pid: int, signum: int) -> bool:
    """Send ``signum`` to the group led by ``pid``; False if nothing received it.

    A child calls ``setpgid`` as its first step, so just after its start it is
    still in the forkserver's group; then only the process itself is signalled,
    never the group it shares with the web process.
    """
    try:
        os.killpg(pid, signum)
        return True
    except ProcessLookupError:
        pass
    try:
        os.kill(pid, signum)
        return True
    except ProcessLookupError:
        return False


def terminate(
    send_signal: Callable[[int], bool],
    wait_exit: Callable[[float], bool],
    grace_period: float,
    on_escalate: Callable[[], None],
) -> None:
    """Send SIGTERM, wait up to ``grace_period`` seconds, then send SIGKILL.

    ``send_signal`` returns False once the process is gone (or reaped), and
    ``wait_exit(timeout)`` returns True once it has exited. The caller reaps the
    process; this function only signals.
    """
    if not send_signal(signal.SIGTERM):
        return
    if wait_exit(grace_period):
        return
    on_escalate()
    send_signal(signal.SIGKILL)
