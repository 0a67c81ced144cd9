"""Assertions on a task's stored stream shared by the fault tests."""

from __future__ import annotations

from collections import Counter
from typing import Any


def check_stored_stream(rows: list[dict[str, Any]], task_id: str) -> dict[str, Any]:
    """Assert that a finished task's stored stream is whole; return its job stats.

    Whole means: seq runs 1..N with no gap or repeat, ``started`` first,
    ``finished`` last, the job's numbered lines 1..n each stored once, and the
    job's ``stats`` line present with ``calls`` equal to n.
    """
    seqs = [row["seq"] for row in rows]
    assert seqs == list(range(1, len(rows) + 1)), (
        f"task {task_id}: stored seqs are not 1..{len(rows)}: {_describe(seqs)}"
    )
    assert rows[0]["event"] == "started", f"task {task_id}: first row {rows[0]}"
    assert rows[-1]["event"] == "finished", f"task {task_id}: last row {rows[-1]}"

    numbers = numbered_lines(rows)
    repeated = sorted(n for n, count in Counter(numbers).items() if count > 1)
    assert not repeated, f"task {task_id}: lines stored twice: {repeated[:20]}"
    expected = list(range(1, len(numbers) + 1))
    assert sorted(numbers) == expected, (
        f"task {task_id}: numbered lines missing: "
        f"{sorted(set(expected) - set(numbers))[:20]}"
    )

    stats = job_stats(rows)
    assert stats["calls"] == len(numbers), (
        f"task {task_id}: the job made {stats['calls']} numbered calls but "
        f"{len(numbers)} are stored"
    )
    return stats


def numbered_lines(rows: list[dict[str, Any]]) -> list[int]:
    return [
        row["options"]["number"]
        for row in rows
        if row["event"] == "log" and "number" in row["options"]
    ]


def job_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the figures of the job's ``stats`` line (see ``tests.faults.jobs``)."""
    for row in reversed(rows):
        if row["event"] == "log" and row["message"] == "stats":
            return dict(row["options"]["stats"])
    raise AssertionError("the job's stats line is not stored")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _describe(seqs: list[int]) -> str:
    repeated = sorted(seq for seq, count in Counter(seqs).items() if count > 1)
    missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
    return f"{len(seqs)} rows, repeated {repeated[:20]}, missing {missing[:20]}"
