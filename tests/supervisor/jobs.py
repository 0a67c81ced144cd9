"""Tiny jobs that the supervisor tests run in child processes."""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from typing import Any

from worker import WebSocketLogHandler, logging_helper


class CodedError(Exception):
    """An exception whose ``__init__`` takes two arguments."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def return_value(value: Any = "done") -> Any:
    return value


def log_messages(count: int, size: int = 10, label: str = "") -> None:
    for index in range(count):
        logging_helper(f"{label}{index:06d} " + "x" * size)


def log_then_exit_abruptly(count: int, size: int) -> None:
    log_messages(count, size)
    os._exit(0)


def log_last_line_through_handler() -> None:
    root = logging.getLogger()
    root.addHandler(WebSocketLogHandler())
    root.setLevel(logging.INFO)
    logging.getLogger("jobs.plain").info("last")


def log_hostile_options() -> None:
    logging_helper(
        "unpicklable", options={"callback": lambda: 1, "lock": threading.Lock()}
    )
    logging_helper("coded", options={"error": CodedError("disk full", 28)})
    root = logging.getLogger()
    root.addHandler(WebSocketLogHandler())
    try:
        raise CodedError("disk full", 28)
    except CodedError:
        logging.getLogger("jobs.hostile").exception("failed")
    for index in range(10):
        logging_helper(f"ordinary {index}")


def log_json_hostile_options() -> None:
    import datetime
    import decimal
    import pathlib
    import uuid

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


def log_malformed_records() -> None:
    root = logging.getLogger()
    root.addHandler(WebSocketLogHandler())
    root.setLevel(logging.INFO)
    logger = logging.getLogger("jobs.malformed")
    logger.info("copied %d files (100%)", 5)
    logger.info("%s and %s", "one")
    logger.info("config %(a)s", {"a": 1})
    logging_helper("100% done %s")
    logging_helper("after malformed")


def log_until_cancelled_with_handler() -> None:
    root = logging.getLogger()
    root.addHandler(WebSocketLogHandler())
    root.setLevel(logging.INFO)
    try:
        while True:
            time.sleep(0.01)
    finally:
        # The supervisor may already have closed the pipe: the handler must
        # neither raise nor recurse.
        for index in range(3):
            logging.getLogger("jobs.closed").info("cleanup %d", index)


def report_progress(values: list[Any]) -> None:
    for value in values:
        logging_helper(f"progress {value!r}", progress=value)


def report_progress_then_fail(value: int) -> None:
    logging_helper("halfway", progress=value)
    raise ValueError("boom")


def exit_with(code: int) -> None:
    sys.exit(code)


def exit_abruptly(code: int) -> None:
    os._exit(code)


def raise_value_error() -> None:
    raise ValueError("bad value 42")


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def segfault() -> None:
    ctypes.string_at(0)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def ignore_sigterm_and_sleep(seconds: float) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging_helper("ignoring SIGTERM")
    time.sleep(seconds)


def start_grandchild_and_sleep(pid_file: str, ignore_sigterm: bool = False) -> None:
    code = "import time; time.sleep(60)"
    if ignore_sigterm:
        code = (
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            + code
        )
    grandchild = subprocess.Popen([sys.executable, "-c", code])
    with open(pid_file + ".tmp", "w") as stream:
        stream.write(f"{os.getpid()} {grandchild.pid}")
    os.replace(pid_file + ".tmp", pid_file)
    logging_helper("grandchild started", options={"grandchild": grandchild.pid})
    time.sleep(60)


def flood_large_messages(count: int, size: int) -> None:
    text = "y" * size
    for index in range(count):
        logging_helper(f"{index} {text}")


def _data_fd() -> int:
    # The data pipe is the only write-only pipe of the child besides 1 and 2.
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in (0, 1, 2):
            continue
        try:
            is_pipe = stat.S_ISFIFO(os.fstat(fd).st_mode)
            access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
        except OSError:
            continue
        if is_pipe and access == os.O_WRONLY:
            return fd
    raise RuntimeError("no data pipe found")


def write_garbage_frames() -> None:
    logging_helper("before garbage")
    fd = _data_fd()
    os.write(fd, b"this is not json\n")
    os.write(fd, b'{"k": "teleport", "message": "unknown kind"}\n')
    os.write(fd, b"[1, 2, 3]\n")
    chunk = b"z" * (1 << 20)
    for _ in range(10):
        os.write(fd, chunk)
    os.write(fd, b"\n")
    logging_helper("after garbage")


def log_messages_and_linger(count: int, size: int, seconds: float) -> None:
    log_messages(count, size)
    time.sleep(seconds)


def log_nested_and_flat_options() -> None:
    logging_helper("nested", options={"tags": ["a", "b"], "table": {"rows": 3}})
    logging_helper("flat", options={"table": "orders"})
    logging_helper("plain")
