"""Jobs that end on their own terms after being asked to stop."""

from __future__ import annotations

import signal
import sys
import time

from worker import Cancelled, logging_helper


def catch_cancel_and_return() -> str:
    logging_helper("waiting for the cancel", progress=40)
    try:
        time.sleep(60)
    except Cancelled:
        logging_helper("cleaning up after the cancel")
    return "returned after the cancel"


def exit_zero_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    logging_helper("waiting for SIGTERM", progress=40)
    time.sleep(60)


def return_at_once() -> str:
    return "done"
