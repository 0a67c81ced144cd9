"""Measure the supervisor: throughput, start latency and an idle child's memory.

Run from the repository root:

    .venv/bin/python bench/bench_supervisor.py

Prints one table row per figure with its target. The figures depend on the
machine and its load; they are measurements, not guarantees.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from supervisor import Supervisor

# Children import this module for its jobs, so the heavy imports (psutil, the
# supervisor) happen in the functions that only the benchmark process runs.

#: Children import the jobs below by this path, never from ``__main__``.
JOBS = "bench.bench_supervisor"
MESSAGES = 200_000
STARTS = 50


def send_messages(count: int) -> None:
    from worker import logging_helper

    for index in range(count):
        logging_helper("message", progress=index * 100 // count)


def send_one() -> None:
    from worker import logging_helper

    logging_helper("first")


def sleep(seconds: float) -> None:
    time.sleep(seconds)


class CountingSink:
    """A no-op sink that notes when a task's first log message arrives."""

    def __init__(self) -> None:
        self.count = 0
        self.first_log: dict[str, float] = {}
        self.done = threading.Event()

    def __call__(self, message: dict[str, object]) -> None:
        self.count += 1
        if message["event"] == "log" and message["task_id"] not in self.first_log:
            self.first_log[str(message["task_id"])] = time.perf_counter()


def make_supervisor(*args: object, **kwargs: object) -> Supervisor:
    from supervisor import Supervisor

    return Supervisor(*args, **kwargs)  # type: ignore[arg-type]


def measure_throughput() -> float:
    sink = CountingSink()
    with make_supervisor({"noop": sink}) as supervisor:
        supervisor.start("warmup", f"{JOBS}:send_one")
        supervisor.wait("warmup", 30)
        began = time.perf_counter()
        supervisor.start("flood", f"{JOBS}:send_messages", args=(MESSAGES,))
        supervisor.wait("flood", 300)
        elapsed = time.perf_counter() - began
    return MESSAGES / elapsed


def measure_start_latency() -> list[float]:
    sink = CountingSink()
    latencies = []
    with make_supervisor({"noop": sink}, max_workers=1) as supervisor:
        supervisor.start("warmup", f"{JOBS}:send_one")
        supervisor.wait("warmup", 30)
        for index in range(STARTS):
            task_id = f"latency-{index}"
            began = time.perf_counter()
            supervisor.start(task_id, f"{JOBS}:send_one")
            supervisor.wait(task_id, 30)
            latencies.append(sink.first_log[task_id] - began)
    return latencies


def measure_idle_rss() -> float:
    import psutil

    with make_supervisor() as supervisor:
        status = supervisor.start("idle", f"{JOBS}:sleep", args=(30,))
        deadline = time.monotonic() + 30
        while status.pid is None and time.monotonic() < deadline:
            time.sleep(0.05)
            status = supervisor.status("idle")
        time.sleep(1.0)
        assert status.pid is not None
        rss = psutil.Process(status.pid).memory_info().rss
    return rss / 2**20


def main() -> None:
    import psutil

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(f"command: {sys.executable} {' '.join(sys.argv)}")
    print(f"machine: {psutil.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    rate = measure_throughput()
    latencies = measure_start_latency()
    rss = measure_idle_rss()
    rows = [
        (f"{MESSAGES:,} messages end to end", f"{rate:,.0f} msg/s", ">= 100,000"),
        (
            f"start() to first message, median of {STARTS}",
            f"{statistics.median(latencies) * 1000:.1f} ms",
            "<= 50 ms",
        ),
        ("RSS of an idle child", f"{rss:.1f} MiB", "<= 30 MB"),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"{'figure':<{width}}  {'measured':>14}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>14}  {target}")


if __name__ == "__main__":
    main()
