"""Jobs for the tests of the consumer and views; they import nothing from Django."""

from __future__ import annotations

import time

from worker import logging_helper

#: Text that runs script if a page inserts it as HTML instead of text.
HOSTILE_MESSAGE = "<img src=x onerror=alert(1)>"
HOSTILE_TYPE = "<script>x</script>"
HOSTILE_OPTION = '"><svg onload=alert(3)>'


def log_then_wait(count: int, interval: float = 0.02) -> None:
    """Log ``count`` numbered messages, then sleep until cancelled."""
    for number in range(1, count + 1):
        logging_helper(f"line {number}", progress=number * 90 // count)
    while True:
        time.sleep(interval)


def log_hostile_text() -> None:
    logging_helper(
        HOSTILE_MESSAGE, message_type=HOSTILE_TYPE, options={"f": HOSTILE_OPTION}
    )
    logging_helper("ordinary")
