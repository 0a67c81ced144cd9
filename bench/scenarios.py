"""Runs of jobs against the web process under test, and the figures they give.

Every run starts its tasks through the bench endpoint, connects one WebSocket
client per task, and only then lets the jobs log (they wait for a go file), so
every log message reaches the client live. A run ends when every client has the
task's ``finished`` message and PostgreSQL contains every row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import re
import statistics
import time
import urllib.request
import uuid
from array import array
from pathlib import Path
from typing import Any

import orjson
import psutil
import psycopg

from bench.client import Watch, watch_task
from bench.jobs import read_samples
from bench.server import ResourceSampler, cpu_seconds
from bench.stats import percentile, summarize

SUPERVISED = "supervised"
INPROCESS = "inprocess"
MODES = (SUPERVISED, INPROCESS)

#: Seconds without a new message at any client, or a new row, after which a
#: run stops waiting. By then the consumer has replied to the replay requests
#: sent after 2, 6 and 14 s, as the page sends them, so what is missing is lost.
STALL_TIMEOUT = 20.0
DB_POLL_INTERVAL = 0.005
MEBIBYTE = 1024 * 1024
#: The supervisor's log line for messages a sink gave up on.
_SINK_DROPS = re.compile(r"Sink \S+ dropped (\d+) messages")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each figure runs; ``--quick`` and the smoke test use smaller ones."""

    throughput_messages: int
    baseline_throughput_messages: int
    latency_jobs: int
    latency_rate: float
    latency_seconds: float
    baseline_latency_seconds: float
    scale_jobs: int
    scale_messages: int
    start_runs: int
    timeout: float


SIZES = {
    "full": Sizes(50_000, 5_000, 20, 100.0, 20.0, 5.0, 100, 2_000, 50, 300.0),
    "quick": Sizes(10_000, 500, 20, 100.0, 3.0, 1.0, 20, 1_000, 10, 60.0),
    "tiny": Sizes(300, 100, 2, 50.0, 1.0, 1.0, 3, 100, 2, 30.0),
}


@dataclasses.dataclass
class JobsRun:
    """The outcome of one run of jobs: what the clients saw, the rows, the timings."""

    mode: str
    task_ids: list[str]
    count: int
    watches: list[Watch]
    job_stats: list[dict[str, Any]]
    go_at: float
    clients_done_at: float
    stored_at: float
    log_rows: int
    web_cpu_seconds: float
    samples_ns: array[int]
    #: Lines of the web process's log written during the run.
    web_log: str = ""
    #: Seconds until every client had its snapshot, before the go signal.
    connect_seconds: float = 0.0

    @property
    def expected(self) -> int:
        return self.count * len(self.task_ids)

    @property
    def delivered(self) -> int:
        return sum(watch.logs for watch in self.watches)

    @property
    def complete(self) -> bool:
        return (
            all(watch.complete for watch in self.watches)
            and self.delivered == self.expected
            and self.log_rows == self.expected
        )

    @property
    def first_call(self) -> float:
        return min(stats["first_call"] for stats in self.job_stats)

    @property
    def last_call(self) -> float:
        return max(stats["last_call"] for stats in self.job_stats)

    @property
    def done_at(self) -> float:
        return max(self.clients_done_at, self.stored_at)

    def latencies(self) -> list[float]:
        return list(itertools.chain.from_iterable(w.latencies for w in self.watches))

    def problems(self) -> list[str]:
        """Describe what is missing, for the report; empty when all arrived."""
        problems = []
        incomplete = [w.task_id for w in self.watches if not w.complete]
        if incomplete:
            problems.append(f"{len(incomplete)} clients never had the whole stream")
        errors = sorted({w.error for w in self.watches if w.error})
        if errors:
            problems.append(f"client errors: {'; '.join(errors)[:300]}")
        if self.delivered != self.expected:
            problems.append(f"clients got {self.delivered} of {self.expected}")
        if self.log_rows != self.expected:
            problems.append(f"PostgreSQL stored {self.log_rows} of {self.expected}")
        return problems

    def delivery_notes(self) -> dict[str, float]:
        """Count the detours of the live stream: drops, gap notes, replays."""
        return {
            "sink_dropped": sum(
                int(count) for count in _SINK_DROPS.findall(self.web_log)
            ),
            "group_sends_over_capacity": self.web_log.count("over capacity"),
            "gap_notes": sum(len(w.gaps) for w in self.watches),
            "replayed_messages": sum(w.replayed for w in self.watches),
            "frames": sum(w.frames for w in self.watches),
            "connect_seconds": self.connect_seconds,
        }


class Bench:
    """The client side of the benchmark: starts tasks, watches them, counts rows."""

    def __init__(
        self,
        base_url: str,
        session_id: str,
        web: psutil.Process,
        web_log: Path,
        workdir: Path,
        database_url: str,
        log_table: str,
    ) -> None:
        self.base_url = base_url
        self.web_log = web_log
        self.session_id = session_id
        self.web = web
        self.workdir = workdir
        self.database_url = database_url
        self.log_table = log_table
        self.run_id = uuid.uuid4().hex[:8]
        self._numbers = itertools.count(1)
        self._db: psycopg.AsyncConnection[Any] | None = None

    async def __aenter__(self) -> Bench:
        self._db = await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._db is not None:
            await self._db.close()

    def new_task_ids(self, label: str, count: int) -> list[str]:
        return [f"{label}-{self.run_id}-{next(self._numbers)}" for _ in range(count)]

    async def start(
        self, mode: str, tasks: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        body = orjson.dumps({"mode": mode, "tasks": tasks})
        answer = await asyncio.to_thread(self._post, "/bench/start/", body)
        return list(answer["started"])

    def _post(self, path: str, body: bytes) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response)

    async def run_jobs(
        self,
        mode: str,
        *,
        jobs: int,
        count: int,
        timeout: float,
        rate: float | None = None,
    ) -> JobsRun:
        """Run ``jobs`` jobs of ``count`` messages each, side by side."""
        task_ids = self.new_task_ids(f"{mode[:3]}{jobs}x{count}", jobs)
        go_path = self.workdir / f"go-{task_ids[0]}"
        stats_paths = [self.workdir / f"{task_id}.json" for task_id in task_ids]
        kwargs = {"count": count, "go_path": str(go_path), "rate": rate}
        tasks = [
            {"task_id": task_id, "kwargs": {**kwargs, "stats_path": str(path)}}
            for task_id, path in zip(task_ids, stats_paths, strict=True)
        ]
        await self.start(mode, tasks)

        watches = [Watch(task_id) for task_id in task_ids]
        clients = [asyncio.create_task(self._watch(watch)) for watch in watches]
        connecting_at = time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(*(w.subscribed.wait() for w in watches)), timeout
        )
        connect_seconds = time.monotonic() - connecting_at

        log_start = self.web_log.stat().st_size
        cpu_before = cpu_seconds(self.web)
        go_at = time.time()
        go_path.touch()
        await _wait_while_progressing(clients, watches, timeout)
        clients_done_at = max((w.complete_at or time.time()) for w in watches)
        stored_at, log_rows = await self._wait_for_rows(task_ids, jobs * count)
        web_cpu = cpu_seconds(self.web) - cpu_before
        for client in clients:
            client.cancel()

        stats = [_read_stats(path) for path in stats_paths]
        return JobsRun(
            mode=mode,
            task_ids=task_ids,
            count=count,
            watches=watches,
            job_stats=[s for s in stats if s is not None],
            go_at=go_at,
            clients_done_at=clients_done_at,
            stored_at=stored_at,
            log_rows=log_rows,
            web_cpu_seconds=web_cpu,
            samples_ns=_all_samples(stats_paths),
            web_log=self._read_web_log(log_start),
            connect_seconds=connect_seconds,
        )

    def _read_web_log(self, start: int) -> str:
        with open(self.web_log, "rb") as log:
            log.seek(start)
            return log.read().decode("utf-8", "replace")

    async def _watch(self, watch: Watch) -> Watch:
        return await watch_task(self.base_url, self.session_id, watch.task_id, watch)

    async def _wait_for_rows(
        self, task_ids: list[str], expected: int
    ) -> tuple[float, int]:
        """Poll PostgreSQL until it contains ``expected`` log rows of the tasks.

        Returns the time the rows were seen complete and their count. Rows already
        complete at the first poll count as stored when the clients were done.
        """
        first_poll = True
        last_rows, last_change = -1, time.monotonic()
        while True:
            rows = await self.count_log_rows(task_ids)
            if rows != last_rows:
                last_rows, last_change = rows, time.monotonic()
            if rows >= expected or time.monotonic() - last_change > STALL_TIMEOUT:
                return (0.0 if first_poll else time.time()), rows
            first_poll = False
            await asyncio.sleep(DB_POLL_INTERVAL)

    async def count_log_rows(self, task_ids: list[str]) -> int:
        assert self._db is not None
        query = f'SELECT count(*) FROM "{self.log_table}" '
        query += "WHERE task_id = ANY(%s) AND event = 'log'"
        cursor = await self._db.execute(query.encode(), (task_ids,))
        row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def time_start(self, mode: str, timeout: float) -> dict[str, float]:
        """Start one job of one message, then watch it as a browser would.

        The client connects once the start response arrives, as a page opened
        after the start does. The consumer's snapshot sends what was logged
        before.
        """
        [task_id] = self.new_task_ids(f"start-{mode[:3]}", 1)
        path = self.workdir / f"{task_id}.json"
        kwargs = {"count": 1, "stats_path": str(path)}
        [started] = await self.start(mode, [{"task_id": task_id, "kwargs": kwargs}])
        watch = await asyncio.wait_for(
            watch_task(self.base_url, self.session_id, task_id), timeout
        )
        called_at = started["called_at"]
        stats = _read_stats(path) or {"first_call": float("nan")}
        return {
            "call": started["returned_at"] - called_at,
            "job_started": stats["first_call"] - called_at,
            "opened": (watch.opened_at or float("nan")) - called_at,
            "first_message": (watch.first_message_at or float("nan")) - called_at,
            "first_log": (watch.first_log_at or float("nan")) - called_at,
            "finished": float(watch.complete),
        }


async def _wait_while_progressing(
    clients: list[asyncio.Task[Watch]], watches: list[Watch], timeout: float
) -> None:
    """Wait for every client, giving up at ``timeout`` or once none has received
    a message for ``STALL_TIMEOUT`` seconds."""
    deadline = time.monotonic() + timeout
    last_count, last_change = -1, time.monotonic()
    pending = set(clients)
    while pending and time.monotonic() < deadline:
        _, pending = await asyncio.wait(pending, timeout=1.0)
        count = sum(w.received for w in watches)
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > STALL_TIMEOUT:
            return


def _read_stats(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def _all_samples(stats_paths: list[Path]) -> array[int]:
    samples = array("q")
    for path in stats_paths:
        try:
            samples.extend(read_samples(str(path)))
        except FileNotFoundError:
            continue
    return samples


# The figures.


def call_cost(run: JobsRun) -> dict[str, Any]:
    """Per-call cost inside the job, in microseconds."""
    summary = summarize(run.samples_ns)
    return {
        "calls": summary["count"],
        "median_us": summary["median"] / 1000,
        "p99_us": summary["p99"] / 1000,
        "mean_us": summary["mean"] / 1000,
        "max_us": summary["max"] / 1000,
    }


def throughput(run: JobsRun) -> dict[str, Any]:
    """Messages per second from the first call until stored and received."""
    seconds = run.done_at - run.first_call
    return {
        "messages": run.expected,
        "seconds": seconds,
        "per_second": run.expected / seconds if seconds > 0 else float("nan"),
        "job_seconds": run.last_call - run.first_call,
        "clients_after_job_seconds": run.clients_done_at - run.last_call,
        "stored_after_job_seconds": max(run.stored_at - run.last_call, 0.0),
        "web_cpu_seconds": run.web_cpu_seconds,
        "complete": run.complete,
        "problems": run.problems(),
        **run.delivery_notes(),
    }


def latency(run: JobsRun) -> dict[str, Any]:
    """Latency from the call to the client, in milliseconds, and the rate reached."""
    summary = summarize(run.latencies())
    span = run.last_call - run.first_call
    return {
        "messages": run.expected,
        "p50_ms": summary["median"] * 1000,
        "p99_ms": summary["p99"] * 1000,
        "max_ms": summary["max"] * 1000,
        "rate_per_second": run.expected / span if span > 0 else float("nan"),
        "web_cpu_seconds": run.web_cpu_seconds,
        "complete": run.complete,
        "problems": run.problems(),
        **run.delivery_notes(),
    }


def scale(run: JobsRun, sampler: ResourceSampler, web_pid: int) -> dict[str, Any]:
    """Delivery, wall time, web process CPU and memory of many jobs at once."""
    wall = run.done_at - run.go_at
    child_peaks = [
        sampler.peak_rss[stats["pid"]] / MEBIBYTE
        for stats in run.job_stats
        if stats["pid"] in sampler.peak_rss
    ]
    return {
        "jobs": len(run.task_ids),
        "messages_each": run.count,
        "expected": run.expected,
        "delivered_clients": run.delivered,
        "delivered_rows": run.log_rows,
        "wall_seconds": wall,
        "web_cpu_seconds": run.web_cpu_seconds,
        "web_cpu_share": run.web_cpu_seconds / wall if wall > 0 else float("nan"),
        "web_peak_rss_mib": sampler.peak_rss.get(web_pid, 0) / MEBIBYTE,
        "children_sampled": len(child_peaks),
        "child_peak_rss_mib_median": _median(child_peaks),
        "child_peak_rss_mib_max": max(child_peaks, default=float("nan")),
        "child_max_rss_mib_reported": max(
            (stats["max_rss_kib"] / 1024 for stats in run.job_stats),
            default=float("nan"),
        ),
        "complete": run.complete,
        "problems": run.problems(),
        **run.delivery_notes(),
    }


def start_latency(samples: list[dict[str, float]]) -> dict[str, Any]:
    """Medians of the start timings, in milliseconds."""
    return {
        "runs": len(samples),
        "finished": int(sum(s["finished"] for s in samples)),
        "call_ms": _median([s["call"] * 1000 for s in samples]),
        "job_started_ms": _median([s["job_started"] * 1000 for s in samples]),
        "opened_ms": _median([s["opened"] * 1000 for s in samples]),
        "first_message_ms": _median([s["first_message"] * 1000 for s in samples]),
        "first_log_ms": _median([s["first_log"] * 1000 for s in samples]),
        "first_message_p90_ms": percentile(
            sorted(s["first_message"] * 1000 for s in samples), 0.9
        ),
    }


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# The suite.


async def run_suite(bench: Bench, sizes: Sizes, say: Any = print) -> dict[str, Any]:
    """Run every figure for both modes and return the results."""
    figures: dict[str, Any] = {}

    say("warming up both modes")
    for mode in MODES:
        await bench.run_jobs(mode, jobs=1, count=100, timeout=sizes.timeout)

    figures["one_job"] = {}
    for mode, count in (
        (SUPERVISED, sizes.throughput_messages),
        (INPROCESS, sizes.baseline_throughput_messages),
    ):
        say(f"one job of {count} messages, {mode}")
        run = await bench.run_jobs(mode, jobs=1, count=count, timeout=sizes.timeout)
        figures["one_job"][mode] = {"cost": call_cost(run), **throughput(run)}

    figures["paced"] = {}
    for mode, seconds in (
        (SUPERVISED, sizes.latency_seconds),
        (INPROCESS, sizes.baseline_latency_seconds),
    ):
        count = round(sizes.latency_rate * seconds)
        say(
            f"{sizes.latency_jobs} jobs at {sizes.latency_rate:g} msg/s "
            f"for {seconds:g} s, {mode}"
        )
        run = await bench.run_jobs(
            mode,
            jobs=sizes.latency_jobs,
            count=count,
            rate=sizes.latency_rate,
            timeout=sizes.timeout,
        )
        figures["paced"][mode] = {"cost": call_cost(run), **latency(run)}

    say(f"{sizes.scale_jobs} jobs of {sizes.scale_messages} messages, {SUPERVISED}")
    with ResourceSampler(bench.web) as sampler:
        run = await bench.run_jobs(
            SUPERVISED,
            jobs=sizes.scale_jobs,
            count=sizes.scale_messages,
            timeout=sizes.timeout,
        )
    figures["scale"] = scale(run, sampler, bench.web.pid)

    figures["start"] = {}
    for mode in MODES:
        say(f"{sizes.start_runs} starts, {mode}")
        samples = [
            await bench.time_start(mode, sizes.timeout) for _ in range(sizes.start_runs)
        ]
        figures["start"][mode] = start_latency(samples)
    return figures
