"""Jobs the browser tests start on the demo server. They import nothing from Django.

The slow jobs wait for a gate file that the test creates, so the test decides
when the job moves on instead of guessing how long a step takes.
"""

from __future__ import annotations

import time
from pathlib import Path

from worker import Cancelled, logging_helper

#: Text that runs script if a page inserts it as HTML instead of text.
HOSTILE_MESSAGE = "<img src=x onerror=alert(1)>"
HOSTILE_TYPE = "<script>x</script>"
HOSTILE_OPTION = '"><svg onload=alert(3)>'

GATE_POLL_SECONDS = 0.05
#: Seconds after which a job stops waiting, so a test that failed before opening
#: a gate leaves no job running for long.
GATE_TIMEOUT_SECONDS = 120.0


def wait_for_gate(gate: str) -> None:
    """Sleep until the file ``gate`` exists, or raise TimeoutError at the deadline."""
    path = Path(gate)
    deadline = time.monotonic() + GATE_TIMEOUT_SECONDS
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"gate file {gate!r} did not appear within {GATE_TIMEOUT_SECONDS} s"
            )
        time.sleep(GATE_POLL_SECONDS)


def log_in_phases(gates: list[str], lines_per_phase: int, interval: float) -> None:
    """Log ``lines_per_phase`` numbered lines, then wait for the next gate file.

    There is one phase more than there are gates. Every line sets the progress to
    its share of all lines and is followed by a pause of ``interval`` seconds.
    """
    total = lines_per_phase * (len(gates) + 1)
    number = 0
    for gate in [*gates, None]:
        for _ in range(lines_per_phase):
            number += 1
            logging_helper(f"line {number} of {total}", progress=number * 100 // total)
            time.sleep(interval)
        if gate is not None:
            logging_helper(f"waiting for {Path(gate).name}")
            wait_for_gate(gate)


def log_until_cancelled(gate: str) -> None:
    """Log a line, then wait for a gate that never opens until the task is cancelled."""
    logging_helper("working until cancelled", progress=10)
    try:
        wait_for_gate(gate)
    except Cancelled:
        logging_helper("cancel received, cleaning up", message_type="warning")
        raise


def log_hostile_text(gate: str) -> None:
    """Wait for ``gate``, then log markup as message, message type and option."""
    logging_helper(f"waiting for {Path(gate).name}")
    wait_for_gate(gate)
    logging_helper(
        HOSTILE_MESSAGE, message_type=HOSTILE_TYPE, options={"f": HOSTILE_OPTION}
    )
    logging_helper("after the hostile line")
