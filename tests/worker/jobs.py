"""Small jobs that the child-process tests run through the worker entry point."""

from __future__ import annotations

import ctypes
import datetime
import os
import subprocess
import sys
import time

from worker import logging_helper


def return_value() -> dict[str, object]:
    logging_helper("working", progress=10)
    return {"answer": 42, "when": datetime.date(2024, 5, 1), "tags": {"b", "a"}}


def raise_value_error() -> None:
    logging_helper("about to fail")
    raise ValueError("invalid row 42")


def exit_with(code: str | int | None) -> None:
    sys.exit(code)


def log_then_os_exit(count: int, size: int, code: int) -> None:
    for number in range(count):
        logging_helper(f"{number:05d}".ljust(size, "."), options={"number": number})
    os._exit(code)


def write_output() -> None:
    print("printed line")
    os.write(1, b"raw stdout line\n")
    print("printed error", file=sys.stderr)
    os.write(2, b"raw stderr line\n")
    print("no newline at the end", end="")


def segfault() -> None:
    logging_helper("before the crash")
    ctypes.string_at(0)


def start_grandchild_and_sleep() -> None:
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    logging_helper("grandchild started", options={"pid": grandchild.pid})
    time.sleep(60)


def write_big_messages(size: int, count: int) -> None:
    text = "x" * size
    for number in range(count):
        logging_helper(text, progress=number % 100, options={"number": number})


def return_text(size: int) -> str:
    return "y" * size


def log_until_pipe_breaks() -> str:
    """Log until the reader has gone, then log once more and return."""
    from worker._runtime import RUNTIME

    logging_helper("first")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        channel = RUNTIME.channel
        if channel is None or channel.closed:
            break
        logging_helper("waiting for the reader to go")
        time.sleep(0.01)
    logging_helper("after the reader went")
    return "survived"
