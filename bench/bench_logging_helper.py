"""Time one `logging_helper` call inside a real supervised child.

The child runs through `worker._child.main` with its data pipe drained by a
reader thread in this process, and times each call of a 200-character message
with ``time.perf_counter_ns``. It prints the median and the 99th percentile.

Run from the repository root::

    .venv/bin/python bench/bench_logging_helper.py [--calls 200000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import worker._child
from worker import ChildSpec, logging_helper

MESSAGE = "converted table Sales with 12 columns and 3 measures; " * 4
MESSAGE = MESSAGE[:200]


def measure(calls: int) -> dict[str, float]:
    """Call logging_helper ``calls`` times and return timing percentiles in µs."""
    for _ in range(1000):
        logging_helper(MESSAGE, progress=50)
    timings = []
    clock = time.perf_counter_ns
    for number in range(calls):
        started = clock()
        logging_helper(MESSAGE, progress=number % 100)
        timings.append(clock() - started)
    timings.sort()
    return {
        "median_us": statistics.median(timings) / 1000,
        "p99_us": timings[int(len(timings) * 0.99)] / 1000,
        "mean_us": statistics.fmean(timings) / 1000,
    }


class _Drain(threading.Thread):
    """Reads a pipe until end of file, keeping only the last lines."""

    def __init__(self, fd: int) -> None:
        super().__init__(name=f"drain-{fd}", daemon=True)
        self.fd = fd
        self.tail = b""

    def run(self) -> None:
        while chunk := os.read(self.fd, 1 << 20):
            self.tail = (self.tail + chunk)[-4096:]


def run(calls: int) -> dict[str, float]:
    """Run `measure` in a supervised child and return what it measured."""
    context = multiprocessing.get_context("forkserver")
    data, stdout, stderr, alive = (os.pipe() for _ in range(4))
    spec = ChildSpec(
        task_id="bench",
        target="bench.bench_logging_helper:measure",
        args=(calls,),
        kwargs={},
        total_steps=None,
        data=Connection(data[1], readable=False),
        stdout=Connection(stdout[1], readable=False),
        stderr=Connection(stderr[1], readable=False),
        alive=Connection(alive[0], writable=False),
    )
    child_ends = [spec.data, spec.stdout, spec.stderr, spec.alive]
    process = context.Process(target=worker._child.main, args=(spec,))
    process.start()
    for end in child_ends:
        end.close()

    drains = [_Drain(fd) for fd in (data[0], stdout[0], stderr[0])]
    for drain in drains:
        drain.start()
    process.join()
    for drain in drains:
        drain.join()
        os.close(drain.fd)
    os.close(alive[1])

    if process.exitcode != 0:
        raise RuntimeError(f"benchmark child failed: {drains[2].tail!r}")
    figures: dict[str, float] = orjson.loads(drains[0].tail.splitlines()[-1])["value"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    calls = parser.parse_args().calls
    figures = run(calls)
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, start method forkserver"
    )
    print(f"{calls} calls, {len(MESSAGE)}-character message")
    print(
        f"median {figures['median_us']:.2f} µs, p99 {figures['p99_us']:.2f} µs, "
        f"mean {figures['mean_us']:.2f} µs"
    )


if __name__ == "__main__":
    main()
