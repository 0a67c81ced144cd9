"""The entry point of a child process started by the supervisor.

`main` prepares the process before the job runs, in this order. The child
leads its own process group, and a watchdog kills that group when the web
process goes away. SIGTERM raises `Cancelled`, and faulthandler writes to
stderr. Stdout and stderr go to the supervisor's pipes, and the frame channel
is installed. Then `main` runs the job and reports how it ended.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import IO, Any

from worker._cancel import CancelGuard, Cancelled
from worker._channel import Channel
from worker._frames import (
    CANCELLED_FRAME,
    encode_error,
    encode_exit,
    encode_result,
)
from worker._runtime import RUNTIME
from worker._spec import ChildSpec, Limits

#: Exit status if the SIGTERM the child sends itself after a cancel does not end it.
_CANCELLED_STATUS = 128 + signal.SIGTERM


@dataclasses.dataclass(frozen=True)
class _Outcome:
    frame: bytes
    exit_status: int
    cancelled: bool = False


def main(spec: ChildSpec) -> None:
    """Run the job ``spec.target`` in this process and report how it ended.

    Never returns: the process exits with 0 when the job returned, 1 when it
    raised, the code of a ``SystemExit``, or by SIGTERM when it was cancelled.
    """
    os.setpgid(0, 0)
    _start_watchdog(spec.alive)
    guard = CancelGuard()
    guard.install()
    faulthandler.enable(file=2, all_threads=True)
    _redirect_output(spec.stdout, spec.stderr)
    channel = Channel(_take_fd(spec.data), guard)
    RUNTIME.install(channel, spec.task_id, spec.total_steps, spec.limits)

    outcome = _run_job(spec, guard)

    _flush_output()
    channel.send(outcome.frame)
    channel.close()
    _exit(outcome)


def load_target(path: str) -> Callable[..., object]:
    """Import ``"package.module:function"`` and return the callable it names.

    Raises ValueError for a path of another form, TypeError when the object is
    not callable, and whatever importing the module raises.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"invalid target {path!r}; expected 'package.module:function'")
    target: Any = importlib.import_module(module_name)
    for name in attribute.split("."):
        target = getattr(target, name)
    if not callable(target):
        raise TypeError(f"target {path!r} is not callable: {target!r}")
    return target  # type: ignore[no-any-return]


def _start_watchdog(alive: Connection) -> None:
    thread = threading.Thread(
        target=_kill_group_when_parent_exits,
        args=(alive,),
        name="worker-parent-watchdog",
        daemon=True,
    )
    thread.start()


def _kill_group_when_parent_exits(alive: Connection) -> None:
    # Only the web process has the write end open, and it never writes, so end
    # of file means that it is gone, even if it died by SIGKILL.
    fd = alive.fileno()
    while True:
        try:
            if not os.read(fd, 4096):
                break
        except OSError:
            break
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _redirect_output(stdout: Connection, stderr: Connection) -> None:
    _flush_output()
    for connection, fd in ((stdout, 1), (stderr, 2)):
        if connection.fileno() != fd:
            os.dup2(connection.fileno(), fd)
            connection.close()
    sys.stdout = _line_buffered(1)
    sys.stderr = _line_buffered(2)


def _line_buffered(fd: int) -> IO[str]:
    # NOTE: each complete line reaches the pipe at once, but text printed
    # without a newline, and what C code buffers in its own stdio, is lost when
    # the job ends the process itself (os._exit, a signal, a crash).
    return open(
        fd,
        "w",
        buffering=1,
        encoding="utf-8",
        errors="backslashreplace",
        closefd=False,
    )


def _take_fd(connection: Connection) -> int:
    fd = os.dup(connection.fileno())
    connection.close()
    return fd


def _run_job(spec: ChildSpec, guard: CancelGuard) -> _Outcome:
    # The outer handler catches a cancel that arrives between the job's end
    # and the moment SIGTERM is ignored.
    try:
        return _run_target(spec, guard)
    except Cancelled:
        guard.ignore()
        return _Outcome(CANCELLED_FRAME, _CANCELLED_STATUS, cancelled=True)


def _run_target(spec: ChildSpec, guard: CancelGuard) -> _Outcome:
    try:
        target = load_target(spec.target)
        value = target(*spec.args, **spec.kwargs)
        guard.ignore()
    except Cancelled:
        raise
    except SystemExit as exc:
        guard.ignore()
        return _exit_outcome(exc, spec.limits)
    except BaseException as exc:
        guard.ignore()
        return _Outcome(encode_error(_without_own_frame(exc), spec.limits), 1)
    return _Outcome(encode_result(value, spec.limits), 0)


def _exit_outcome(exc: SystemExit, limits: Limits) -> _Outcome:
    code = exc.code
    if code is None:
        return _Outcome(encode_exit(0, None, limits), 0)
    if isinstance(code, int):
        status = code if 0 <= code <= 255 else 1
        reported = code if -(2**63) <= code < 2**63 else status
        return _Outcome(encode_exit(int(reported), None, limits), status)
    # sys.exit("text") prints the text and exits with 1, as Python itself does.
    return _Outcome(encode_exit(1, str(code), limits), 1)


def _without_own_frame(exc: BaseException) -> BaseException:
    traceback = exc.__traceback__
    if traceback is not None and traceback.tb_next is not None:
        exc.__traceback__ = traceback.tb_next
    return exc


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            # The supervisor closed the pipe; the output has nowhere to go.
            continue


def _shut_down_logging() -> None:
    # Flushes the job's own handlers, which os._exit would otherwise cut off.
    try:
        logging.shutdown()
    except Exception as exc:
        RUNTIME.notices.once(
            "logging-shutdown",
            f"worker: task {RUNTIME.task_id}: flushing the logging handlers failed "
            f"({exc!r})",
        )


def _exit(outcome: _Outcome) -> None:
    # NOTE: os._exit skips atexit handlers and does not wait for threads the
    # job left running, so a job cannot keep its process alive after
    # reporting. sys.stdout, sys.stderr and logging handlers are flushed
    # first; what other streams or threads of the job still buffer is lost.
    _shut_down_logging()
    _flush_output()
    if outcome.cancelled:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        os.kill(os.getpid(), signal.SIGTERM)
    os._exit(outcome.exit_status)
