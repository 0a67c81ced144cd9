"""Jobs for the command tests, importable by the child process."""

from __future__ import annotations

import time

from worker import logging_helper


def wait_for_cancel(seconds: str) -> None:
    """Log once, then sleep until cancelled or ``seconds`` have passed."""
    logging_helper("waiting", progress=10)
    time.sleep(float(seconds))
