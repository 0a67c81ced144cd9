"""Small jobs the tests start in child processes; they import nothing from Django."""

from __future__ import annotations

import datetime
import decimal
import pathlib
import time
import uuid

from worker import increment_progress, logging_helper


def count_to(count: int) -> str:
    """Log ``count`` numbered messages with rising progress, then return."""
    for number in range(1, count + 1):
        logging_helper(f"line {number}", progress=number * 100 // count)
    return "done"


def count_steps(steps: int) -> None:
    """Advance the step counter set by ``set_task_info`` ``steps`` times."""
    for number in range(steps):
        logging_helper(f"step {number + 1}", progress=increment_progress())


def log_hostile_options() -> None:
    logging_helper(
        "hostile",
        options={
            "when": datetime.datetime.now(datetime.UTC),
            "amount": decimal.Decimal("1.5"),
            "id": uuid.uuid4(),
            "tags": {"a", "b"},
            "path": pathlib.Path("exports/sales.tmdl"),
            1: "int key",
            None: "none key",
            "raw": b"\xff",
        },
    )
    logging_helper("ordinary")


def sleep_forever(interval: float = 0.05) -> None:
    """Log once, then sleep until cancelled."""
    logging_helper("waiting for cancel", progress=1)
    while True:
        time.sleep(interval)


def fail() -> None:
    logging_helper("about to fail", progress=40)
    raise ValueError("bad workbook")


def flood_then_wait(count: int) -> None:
    """Log ``count`` messages at once, then sleep until cancelled."""
    for number in range(1, count + 1):
        logging_helper(f"flood {number}")
    sleep_forever()
