"""The benchmark job: log N messages of about 200 bytes, with progress, timing
each ``logging_helper`` call.

The job runs in a supervised child (imported by path, ``bench.jobs:log_messages``)
and imports nothing from Django. Each message carries ``sent_at``, the
``time.time()`` of its call, so the client can compute the latency. When done,
the job writes its call timings to ``stats_path`` as JSON.
"""

from __future__ import annotations

import json
import os
import resource
import time
from array import array
from collections.abc import Callable
from typing import Any

from bench.stats import summarize

#: Seconds a job waits for its go file before it starts anyway.
GO_TIMEOUT = 120.0

_FILLER = (
    "converted calculated field [Sales].[Profit Ratio] to a DAX measure; "
    "copied 24 columns of table Orders into the semantic model; "
    "relationship Orders->Returns kept as many-to-one"
)


def message_text(index: int, size: int) -> str:
    """Return a log line of exactly ``size`` characters for message ``index``."""
    head = f"step {index:07d}: "
    body = (_FILLER * (size // len(_FILLER) + 1))[: max(size - len(head), 0)]
    return head + body


def wait_for_go(go_path: str | None) -> None:
    """Block until ``go_path`` exists, so every watcher is connected first."""
    if go_path is None:
        return
    deadline = time.monotonic() + GO_TIMEOUT
    while not os.path.exists(go_path) and time.monotonic() < deadline:
        time.sleep(0.002)


def read_samples(stats_path: str) -> array[int]:
    """Return the call durations, in nanoseconds, that ``run_timed`` wrote."""
    samples = array("q")
    with open(stats_path + ".ns", "rb") as stream:
        samples.frombytes(stream.read())
    return samples


def run_timed(
    log: Callable[..., Any],
    count: int,
    *,
    stats_path: str,
    go_path: str | None = None,
    rate: float | None = None,
    size: int = 200,
) -> dict[str, Any]:
    """Call ``log`` ``count`` times like ``logging_helper``, time each call, and
    write the summary to ``stats_path``."""
    wait_for_go(go_path)
    durations = array("q")
    interval = 1.0 / rate if rate else 0.0
    started = time.perf_counter()
    first_call = time.time()
    for index in range(count):
        if interval:
            _sleep_until(started + index * interval)
        text = message_text(index, size)
        progress = (index + 1) * 100 // count
        options = {"sent_at": time.time()}
        before = time.perf_counter_ns()
        log(text, progress=progress, options=options)
        durations.append(time.perf_counter_ns() - before)
    last_call = time.time()
    stats = _job_stats(durations, first_call, last_call)
    # The samples go to a binary file next to the summary: writing them as JSON
    # would delay the job's end, and so the end-to-end figures, measurably.
    with open(stats_path + ".ns", "wb") as stream:
        durations.tofile(stream)
    with open(stats_path, "w", encoding="utf-8") as stream:
        json.dump(stats, stream)
    return stats


def _sleep_until(moment: float) -> None:
    delay = moment - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def _job_stats(
    durations: array[int], first_call: float, last_call: float
) -> dict[str, Any]:
    cpu = os.times()
    return {
        "pid": os.getpid(),
        "calls": len(durations),
        "call_ns": summarize(durations),
        "first_call": first_call,
        "last_call": last_call,
        "cpu_seconds": cpu.user + cpu.system,
        "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def log_messages(
    count: int,
    *,
    stats_path: str,
    go_path: str | None = None,
    rate: float | None = None,
    size: int = 200,
) -> int:
    """Log ``count`` messages through the product's ``logging_helper``."""
    from worker import logging_helper

    run_timed(
        logging_helper,
        count,
        stats_path=stats_path,
        go_path=go_path,
        rate=rate,
        size=size,
    )
    return count
