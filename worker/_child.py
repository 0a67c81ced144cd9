"""The entry point of a child process started by the supervisor.

`main` prepares the process before the job runs, in this order. The child
leads its own process group, and a watchdog kills the child's descendants and
that group when the web process goes away. Stdout and stderr go to the
supervisor's pipes, faulthandler writes to stderr, the frame channel is
installed, and on Linux the child becomes the subreaper of its descendants, so
that none escapes the watchdog by leaving the group. Only then does SIGTERM
raise `Cancelled`: a SIGTERM that arrives earlier ends the process by the
default action, silently, and the supervisor that sent it reports the task
cancelled. Then `main` runs the job and reports how it ended.
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
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import IO, Any

from worker._cancel import CancelGuard, Cancelled
from worker._channel import Channel
from worker._frames import (
    CANCELLED_FRAME,
    MAX_SHORT_TEXT_CHARS,
    encode_error,
    encode_exit,
    encode_result,
)
from worker._jsonsafe import text_of, type_name
from worker._runtime import RUNTIME
from worker._spec import FRAME_ERROR, ChildSpec, Limits
from worker._subreaper import become_subreaper, kill_descendants
from worker._truncate import fit_frame

#: Exit status if the SIGTERM the child sends itself after a cancel does not end it.
_CANCELLED_STATUS = 128 + signal.SIGTERM
#: Seconds the child waits for the job's logging handlers to flush before exiting.
LOGGING_SHUTDOWN_TIMEOUT = 2.0


@dataclasses.dataclass(frozen=True)
class _Outcome:
    frame: bytes
    exit_status: int
    cancelled: bool = False


def main(spec: ChildSpec) -> None:
    """Run the job ``spec.target`` in this process and report how it ended.

    Never returns: the process exits with 0 when the job returned, 1 when it
    raised, the code of a ``SystemExit`` (see `_exit_outcome`), or by SIGTERM
    when it was cancelled.
    """
    os.setpgid(0, 0)
    _start_watchdog(spec.alive)
    _redirect_output(spec.stdout, spec.stderr)
    faulthandler.enable(file=2, all_threads=True)
    guard = CancelGuard()
    channel = Channel(_take_fd(spec.data), guard)
    RUNTIME.install(channel, spec.task_id, spec.total_steps, spec.limits)
    _become_subreaper()
    job_pid = os.getpid()

    outcome = _run_job(spec, guard)

    _flush_output()
    # A process the job forked that returns from the target instead of
    # exiting must not report: the job's own process does that.
    if os.getpid() == job_pid:
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
    # Processes that the job forks have no copy of this thread, because
    # threads do not survive fork. This one kills them all.
    thread = threading.Thread(
        target=_kill_group_when_parent_exits,
        args=(alive,),
        name="worker-parent-watchdog",
        daemon=True,
    )
    thread.start()


def _become_subreaper() -> None:
    # NOTE: orphans that exit while the job runs stay zombies of this process,
    # because waiting for any child here would take the exit status of the
    # job's own children from the job (subprocess, multiprocessing). Init, or
    # a subreaper above this process, reaps them once this process ends.
    try:
        become_subreaper()
    except OSError as exc:
        _notice(
            "subreaper",
            f"prctl(PR_SET_CHILD_SUBREAPER) failed ({exc}), so a process the "
            "job starts can outlive the web process once its parent exits "
            "and it leaves the process group",
        )


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
    # The killed descendants become zombies of their parents or of this
    # subreaper. Init, or a subreaper above this process, reaps them once the
    # group kill below ends this process too.
    try:
        kill_descendants(os.getpid())
    finally:
        _kill_group()


def _kill_group() -> None:
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
    # The handler is installed inside the try, so no cancel can escape `main`.
    # The try also catches a cancel that arrives between the job's end and the
    # moment SIGTERM is ignored.
    try:
        guard.install()
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
        return _error_outcome(_without_own_frame(exc), spec.limits)
    return _result_outcome(value, spec.limits)


def _result_outcome(value: object, limits: Limits) -> _Outcome:
    try:
        return _Outcome(encode_result(value, limits), 0)
    except BaseException as exc:
        # Encoding calls repr() or str() of the value, which can raise
        # anything, even SystemExit.
        return _error_outcome(exc, limits)


def _error_outcome(exc: BaseException, limits: Limits) -> _Outcome:
    try:
        frame = encode_error(exc, limits)
    except BaseException as failure:
        # str() of the exception raised something that text_of does not catch,
        # such as SystemExit.
        frame = _fallback_error_frame(exc, failure, limits)
    return _Outcome(frame, 1)


def _fallback_error_frame(
    exc: BaseException, failure: BaseException, limits: Limits
) -> bytes:
    name = type_name(type(exc))
    text = f"<{name} object (str() raised {type_name(type(failure))})>"
    lines = traceback.format_tb(exc.__traceback__)
    trace = "Traceback (most recent call last):\n" + "".join(lines) + f"{name}: {text}"
    frame = {"k": FRAME_ERROR, "type": name, "message": text, "traceback": trace}
    max_chars = {
        "type": MAX_SHORT_TEXT_CHARS,
        "message": limits.max_message_chars,
        "traceback": limits.max_message_chars,
    }
    return fit_frame(
        frame, max_chars, limits.max_frame_bytes, keep_end=frozenset({"traceback"})
    )


def _exit_outcome(exc: SystemExit, limits: Limits) -> _Outcome:
    """Turn a ``SystemExit`` into the exit frame and the process's exit status.

    The frame's code is always the status the process exits with, so it is
    never negative. ``None`` exits with 0 and an int in 0..255 with itself. Any
    other int exits with 1, and the frame's message keeps the original code;
    Python would exit with the code's low 8 bits, so ``sys.exit(256)`` would
    look like success and ``sys.exit(-1)`` like 255. Any other value exits
    with 1 and its text as the message, as Python prints it.
    """
    code = exc.code
    if code is None:
        return _Outcome(encode_exit(0, None, limits), 0)
    if isinstance(code, int):
        if 0 <= code <= 255:
            return _Outcome(encode_exit(int(code), None, limits), int(code))
        message = (
            f"exit code {_guarded_text(code)} is outside 0..255, "
            "so the process exited with 1"
        )
        return _Outcome(encode_exit(1, message, limits), 1)
    return _Outcome(encode_exit(1, _guarded_text(code), limits), 1)


def _guarded_text(value: object) -> str:
    """Return `text_of` ``value``, or a text naming its type if even that raised."""
    try:
        return text_of(value)
    except BaseException as exc:
        return (
            f"<{type_name(type(value))} object (str() raised {type_name(type(exc))})>"
        )


def _without_own_frame(exc: BaseException) -> BaseException:
    trace = exc.__traceback__
    if trace is not None and trace.tb_next is not None:
        exc.__traceback__ = trace.tb_next
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


def _shut_down_logging(timeout: float = LOGGING_SHUTDOWN_TIMEOUT) -> None:
    """Flush and close the job's logging handlers, waiting at most ``timeout`` s.

    ``logging.shutdown`` takes each handler's lock, which a thread of the job
    may hold forever (a handler stuck sending to a server), so it runs in a
    daemon thread that the process leaves behind when the time is up.
    """
    failures: list[Exception] = []

    def shut_down() -> None:
        try:
            logging.shutdown()
        except Exception as exc:
            failures.append(exc)

    thread = threading.Thread(
        target=shut_down, name="worker-logging-shutdown", daemon=True
    )
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _notice(
            "logging-shutdown",
            f"flushing the logging handlers timed out after {timeout:g} s, "
            "so the process exits without waiting for them",
        )
    elif failures:
        _notice(
            "logging-shutdown",
            f"flushing the logging handlers failed ({failures[0]!r})",
        )


def _notice(kind: str, text: str) -> None:
    RUNTIME.notices.once(kind, f"worker: task {RUNTIME.task_id}: {text}")


def _exit(outcome: _Outcome) -> None:
    # NOTE: os._exit skips atexit handlers and does not wait for threads the
    # job left running, so a job cannot keep its process alive after
    # reporting. sys.stdout, sys.stderr and the logging handlers are flushed
    # first, the handlers for at most LOGGING_SHUTDOWN_TIMEOUT seconds. What a
    # handler has not sent by then is lost, and so is what other streams or
    # threads of the job still buffer.
    _shut_down_logging()
    _flush_output()
    if outcome.cancelled:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        os.kill(os.getpid(), signal.SIGTERM)
    os._exit(outcome.exit_status)
