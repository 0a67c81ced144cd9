"""Jobs the fault tests run in supervised children.

A job that must outlast a fault runs until a stop file appears, so a test ends it
when the fault is over instead of guessing a duration. Every job times its own
``logging_helper`` calls and reports the figures twice: in the options of its
last message (``event == "log"``, ``message == "stats"``) and as its return value.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from worker import logging_helper

__all__ = [
    "flood_large_messages",
    "huge_option_value",
    "log_until_stopped",
    "log_until_stopped_with_grandchild",
]

MEGABYTE = 1024 * 1024


class CallTimer:
    """Durations of the job's ``logging_helper`` calls, in microseconds."""

    def __init__(self) -> None:
        self.durations_us: list[float] = []

    def log(self, message: str, **kwargs: Any) -> None:
        started = time.perf_counter_ns()
        logging_helper(message, **kwargs)
        self.durations_us.append((time.perf_counter_ns() - started) / 1000)

    def stats(self) -> dict[str, Any]:
        ordered = sorted(self.durations_us) or [0.0]
        count = len(self.durations_us)

        def percentile(fraction: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(fraction * count))], 1)

        return {
            "calls": count,
            "p50_us": percentile(0.50),
            "p99_us": percentile(0.99),
            "max_us": round(ordered[-1], 1),
        }

    def report(self) -> dict[str, Any]:
        """Log the figures as the job's last message and return them."""
        stats = self.stats()
        # The stats message itself is one more call, counted by ``calls + 1``.
        logging_helper("stats", options={"stats": stats})
        return stats


def log_until_stopped(
    stop_file: str, interval: float = 0.02, size: int = 0, max_calls: int = 100_000
) -> dict[str, Any]:
    """Log numbered messages every ``interval`` seconds until ``stop_file`` exists."""
    timer = CallTimer()
    padding = "x" * size
    number = 0
    while not os.path.exists(stop_file) and number < max_calls:
        number += 1
        timer.log(
            f"line {number} {padding}",
            progress=min(99, number // 10),
            options={"number": number},
        )
        time.sleep(interval)
    return timer.report()


def log_until_stopped_with_grandchild(
    stop_file: str, interval: float = 0.02
) -> dict[str, Any]:
    """Start a long-sleeping grandchild, log both pids, then log until stopped."""
    grandchild = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        stdin=subprocess.DEVNULL,
    )
    logging_helper(
        "processes",
        options={"child_pid": os.getpid(), "grandchild_pid": grandchild.pid},
    )
    try:
        return log_until_stopped(stop_file, interval)
    finally:
        grandchild.kill()
        grandchild.wait()


def flood_large_messages(
    count: int, size: int = MEGABYTE, start_file: str | None = None
) -> dict[str, Any]:
    """Log ``count`` messages of ``size`` characters each as fast as possible.

    With ``start_file`` the flood waits until that file exists, so a test can
    connect its client first.
    """
    while start_file is not None and not os.path.exists(start_file):
        time.sleep(0.01)
    timer = CallTimer()
    body = "m" * size
    for number in range(1, count + 1):
        timer.log(f"flood {number} {body}", options={"number": number})
    return timer.report()


def huge_option_value(size: int = 40 * MEGABYTE) -> dict[str, Any]:
    """Log one message whose option value has ``size`` characters, then one more."""
    timer = CallTimer()
    timer.log("huge option", options={"blob": "o" * size})
    timer.log("after huge option")
    return timer.report()


def touch(path: str | Path) -> None:
    """Create ``path``: the signal for a ``*_until_stopped`` job to finish."""
    Path(path).touch()
