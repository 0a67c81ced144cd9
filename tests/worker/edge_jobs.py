"""Jobs that fork, block their logging handlers or end in unusual ways."""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import os
import sys
import threading
import time

from worker import logging_helper


class UnprintableError(Exception):
    """An exception whose str() raises the exception type it was given."""

    def __init__(self, raises: type[BaseException]) -> None:
        super().__init__("never shown")
        self.raises = raises

    def __str__(self) -> str:
        raise self.raises("str() of UnprintableError")


class Unprintable:
    """A value whose str() and repr() raise SystemExit."""

    def __str__(self) -> str:
        raise SystemExit("str() of Unprintable")

    def __repr__(self) -> str:
        raise SystemExit("repr() of Unprintable")


def send_frames(writer: int, count: int, size: int) -> int:
    """Send ``count`` messages of ``size`` characters tagged with ``writer``."""
    text = "x" * size
    for number in range(count):
        logging_helper(text, options={"writer": writer, "number": number})
    return count


def fork_writers(writers: int, count: int, size: int) -> list[int]:
    """Fork ``writers`` processes with os.fork that each call `send_frames`."""
    pids = []
    for writer in range(writers):
        pid = os.fork()
        if pid == 0:
            _run_forked_writer(writer, count, size)
        pids.append(pid)
    logging_helper("writers started")
    return [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]


def _run_forked_writer(writer: int, count: int, size: int) -> None:
    status = 1
    try:
        send_frames(writer, count, size)
        status = 0
    finally:
        os._exit(status)


def pool_writers(writers: int, count: int, size: int) -> list[int]:
    """Run `send_frames` in a pool of ``writers`` forked processes."""
    context = multiprocessing.get_context("fork")
    tasks = [(writer, count, size) for writer in range(writers)]
    # Leaving the block calls terminate(), which stops the idle workers with
    # SIGTERM.
    with context.Pool(writers) as pool:
        return pool.starmap(send_frames, tasks)


def fork_and_return_in_both() -> str:
    """Fork, and let the forked process return from the job as well."""
    pid = os.fork()
    if pid == 0:
        logging_helper("forked process returns")
        return "forked"
    os.waitpid(pid, 0)
    return "parent"


def fork_then_sleep(seconds: float) -> None:
    """Fork a process that sleeps, sleep too, and log how the forked one ended."""
    pid = os.fork()
    if pid == 0:
        logging_helper("forked process sleeps")
        time.sleep(seconds)
        os._exit(0)
    try:
        logging_helper("job process sleeps", options={"pid": pid})
        sleep_for(seconds)
    finally:
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        logging_helper("forked process ended", options={"status": status})


def return_while_handler_locked() -> str:
    """Return while another thread holds a logging handler's lock forever."""
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger("tests.locked").addHandler(handler)
    locked = threading.Event()

    def hold_lock() -> None:
        handler.acquire()
        locked.set()
        time.sleep(60)

    threading.Thread(target=hold_lock, daemon=True).start()
    locked.wait(10)
    return "returned"


def log_through_memory_handler(path: str) -> str:
    """Log a line that only reaches ``path`` when the handler is closed."""
    target = logging.FileHandler(path)
    handler = logging.handlers.MemoryHandler(capacity=1000, target=target)
    logger = logging.getLogger("tests.buffered")
    logger.addHandler(handler)
    logger.warning("buffered line")
    return "returned"


def raise_unprintable(raises: type[BaseException]) -> None:
    raise UnprintableError(raises)


def exit_with_unprintable() -> None:
    sys.exit(Unprintable())


def return_unprintable() -> Unprintable:
    return Unprintable()


def sleep_for(seconds: float) -> None:
    """Sleep in short steps, so a cancel is raised within one step.

    A Python signal handler runs between bytecodes. A SIGTERM that arrives just
    before a long ``time.sleep`` enters the kernel waits until that sleep ends.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
