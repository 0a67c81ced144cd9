"""The machine, the versions, and the table of figures the bench prints."""

from __future__ import annotations

import math
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import psutil
import psycopg
import redis

PACKAGES = ("Django", "channels", "channels-redis", "daphne", "websockets", "psycopg")
SUPERVISED = "supervised"
INPROCESS = "inprocess"


def machine() -> dict[str, Any]:
    """Describe the CPU, memory and load of this machine."""
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def other_load(interval: float = 1.0) -> dict[str, Any]:
    """Measure how busy the CPUs are for ``interval`` seconds, and by whom."""
    processes = list(psutil.process_iter(["pid", "cmdline"]))
    for process in processes:
        try:
            process.cpu_percent(None)
        except psutil.Error:
            continue
    busy = psutil.cpu_percent(interval=interval)
    busiest = []
    for process in processes:
        try:
            share = process.cpu_percent(None)
        except psutil.Error:
            continue
        if share >= 10:
            command = " ".join(process.info["cmdline"] or [])[:70]
            busiest.append(f"pid {process.pid} at {share:.0f}%: {command}")
    return {"cpu_busy_percent": busy, "busy_processes": busiest}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions(postgres_url: str, redis_url: str) -> dict[str, str]:
    """Return the versions of Python, the packages and both servers."""
    found = {"Python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    found["Redis server"] = str(
        redis.Redis.from_url(redis_url).info("server")["redis_version"]
    )
    with psycopg.connect(postgres_url) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    found["PostgreSQL server"] = str(row[0]) if row else "unknown"
    return found


# The table.


def _number(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _micro(value: float) -> str:
    return f"{_number(value, 1 if value < 100 else 0)} µs"


def _milli(value: float) -> str:
    return f"{_number(value, 1 if value < 100 else 0)} ms"


def _ratio(value: float) -> str:
    return f"{_number(value, 0 if value >= 10 else 1)}x"


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def _divide(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def table_rows(figures: dict[str, Any], sizes: Any) -> list[list[str]]:
    """Return the rows of the figures table, the header first."""
    rows = [["#", "figure", "supervised (ours)", "in-process", "ratio", "target", ""]]
    rows += _cost_rows(figures, sizes)
    rows += _throughput_rows(figures)
    rows += _latency_rows(figures, sizes)
    rows += _scale_rows(figures["scale"])
    rows += _start_rows(figures["start"], sizes)
    return rows


def _cost_rows(figures: dict[str, Any], sizes: Any) -> list[list[str]]:
    rows = []
    paced = f"{sizes.latency_jobs} paced jobs"
    for run, title in (("one_job", "one job flat out"), ("paced", paced)):
        ours = figures[run][SUPERVISED]["cost"]
        theirs = figures[run][INPROCESS]["cost"]
        for key, label in (("median_us", "median"), ("p99_us", "p99")):
            ratio = _divide(theirs[key], ours[key])
            rows.append(
                [
                    "1",
                    f"cost per logging_helper call, {label}, {title}",
                    _micro(ours[key]),
                    _micro(theirs[key]),
                    _ratio(ratio),
                    "≥ 100x cheaper",
                    _verdict(ratio >= 100),
                ]
            )
    return rows


def _throughput_rows(figures: dict[str, Any]) -> list[list[str]]:
    ours = figures["one_job"][SUPERVISED]
    theirs = figures["one_job"][INPROCESS]
    ratio = _divide(ours["per_second"], theirs["per_second"])
    met = ours["per_second"] >= 20_000 and ratio >= 20 and ours["complete"]
    return [
        [
            "2",
            f"throughput of one job to PostgreSQL and the WebSocket client "
            f"({_number(ours['messages'])} / {_number(theirs['messages'])} messages)",
            f"{_number(ours['per_second'])} msg/s",
            f"{_number(theirs['per_second'])} msg/s",
            _ratio(ratio),
            "≥ 20,000 msg/s and ≥ 20x",
            _verdict(met),
        ],
        _detour_row("2", "one job", ours, theirs),
    ]


def _detour_row(
    figure: str, title: str, ours: dict[str, Any], theirs: Any
) -> list[str]:
    def text(result: dict[str, Any]) -> str:
        return (
            f"{_number(result['sink_dropped'])} / "
            f"{_number(result['group_sends_over_capacity'])} / "
            f"{_number(result['gap_notes'])}"
        )

    return [
        figure,
        f"{title}: sink drops / group sends over capacity / gap notes",
        text(ours),
        text(theirs) if theirs else "",
        "",
        "",
        "",
    ]


def _latency_rows(figures: dict[str, Any], sizes: Any) -> list[list[str]]:
    ours = figures["paced"][SUPERVISED]
    theirs = figures["paced"][INPROCESS]
    load = f"{sizes.latency_jobs} jobs x {sizes.latency_rate:g} msg/s"
    return [
        ["3", f"latency call → client, p50 ({load})", _milli(ours["p50_ms"]),
         _milli(theirs["p50_ms"]), "", "", ""],
        ["3", f"latency call → client, p99 ({load})", _milli(ours["p99_ms"]),
         _milli(theirs["p99_ms"]), "", "≤ 50 ms",
         _verdict(ours["p99_ms"] <= 50 and ours["complete"])],
        ["3", "rate the jobs reached", f"{_number(ours['rate_per_second'])} msg/s",
         f"{_number(theirs['rate_per_second'])} msg/s", "",
         f"{_number(sizes.latency_jobs * sizes.latency_rate)} msg/s", ""],
        _detour_row("3", "paced jobs", ours, theirs),
    ]  # fmt: skip


def _scale_rows(result: dict[str, Any]) -> list[list[str]]:
    title = f"{result['jobs']} jobs x {_number(result['messages_each'])} messages"
    delivered = (
        f"{_number(result['delivered_clients'])} / {_number(result['delivered_rows'])}"
        f" of {_number(result['expected'])}"
    )
    share = result["web_cpu_share"] * 100
    return [
        ["4", f"{title}: delivered to clients / rows", delivered, "", "", "all",
         _verdict(result["complete"])],
        ["4", f"{title}: wall time", f"{_number(result['wall_seconds'], 1)} s",
         "", "", "", ""],
        ["4", f"{result['jobs']} clients connected (before the jobs log)",
         f"{_number(result['connect_seconds'], 1)} s", "", "", "", ""],
        ["4", "web process CPU over the run", f"{_number(share)}% of one core",
         "", "", "", ""],
        ["4", "peak RSS of the web process",
         f"{_number(result['web_peak_rss_mib'])} MiB", "", "", "", ""],
        ["4", "peak RSS of a child, median / max",
         f"{_number(result['child_peak_rss_mib_median'])} / "
         f"{_number(result['child_peak_rss_mib_max'])} MiB", "", "", "", ""],
        _detour_row("4", title, result, None),
    ]  # fmt: skip


def _start_rows(result: dict[str, Any], sizes: Any) -> list[list[str]]:
    ours = result[SUPERVISED]
    theirs = result[INPROCESS]
    runs = f"median of {ours['runs']}"
    return [
        ["5", f"start → first message at the client ({runs})",
         _milli(ours["first_message_ms"]), _milli(theirs["first_message_ms"]),
         "", "", ""],
        ["5", f"start → first job message at the client ({runs})",
         _milli(ours["first_log_ms"]), _milli(theirs["first_log_ms"]), "", "", ""],
        ["5", f"start → the job's first line runs ({runs})",
         _milli(ours["job_started_ms"]), _milli(theirs["job_started_ms"]), "", "",
         ""],
    ]  # fmt: skip


def format_table(rows: list[list[str]]) -> str:
    """Format rows as a Markdown table with aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def problems(figures: dict[str, Any]) -> list[str]:
    """List every run in which a message was missing."""
    found = []
    for run in ("one_job", "paced"):
        for mode, result in figures[run].items():
            found += [f"{run} {mode}: {text}" for text in result["problems"]]
    found += [f"scale: {text}" for text in figures["scale"]["problems"]]
    for mode, result in figures["start"].items():
        if result["finished"] != result["runs"]:
            found.append(
                f"start {mode}: {result['runs'] - result['finished']} runs had no "
                "finished message"
            )
    return found
