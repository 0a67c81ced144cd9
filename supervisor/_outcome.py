"""Deciding how a task ended from its report frame, its exit code and requests."""

from __future__ import annotations

import dataclasses
import signal
from typing import Any

from ._status import ErrorInfo, TaskState

__all__ = ["Outcome", "decide_outcome", "signal_name"]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The final state of a task and the text of its ``finished`` message."""

    state: TaskState
    exit_code: int | None
    signal: str | None
    error: ErrorInfo | None
    summary: str


def signal_name(signum: int) -> str:
    """Return ``"SIGKILL"`` for 9, or ``"signal 99"`` for a number without name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def decide_outcome(
    report: dict[str, Any] | None,
    stop_reason: str | None,
    exitcode: int | None,
    stderr_tail: str,
    timeout: float | None = None,
    *,
    exit_status_known: bool = True,
) -> Outcome:
    """Decide the outcome of a child that exited with ``exitcode``.

    ``exitcode`` is as multiprocessing reports it: negative for the signal that
    killed the process. ``stop_reason`` is a cancel or timeout requested before
    the job reported. It wins over the report, so a job that catches the cancel
    and returns still ends cancelled. Without ``exit_status_known`` (the
    forkserver that would have reported it died), the summary mentions that.
    """
    outcome = _decide(report, stop_reason, exitcode, stderr_tail, timeout)
    if exit_status_known:
        return outcome
    return dataclasses.replace(
        outcome,
        summary=f"{outcome.summary} (exit status unknown: its forkserver died)",
    )


def _decide(
    report: dict[str, Any] | None,
    stop_reason: str | None,
    exitcode: int | None,
    stderr_tail: str,
    timeout: float | None,
) -> Outcome:
    signal_text = None if exitcode is None or exitcode >= 0 else signal_name(-exitcode)
    exit_code = exitcode if exitcode is not None and exitcode >= 0 else None
    kind = None if report is None else report.get("k")
    code = report.get("code") if report is not None else None

    if stop_reason == "timeout":
        summary = "Task timed out" + (f" after {timeout:g} s" if timeout else "")
        return Outcome(TaskState.TIMED_OUT, exit_code, signal_text, None, summary)
    if stop_reason == "cancel" or kind == "cancelled":
        return Outcome(
            TaskState.CANCELLED, exit_code, signal_text, None, "Task cancelled"
        )
    if kind == "result" or (kind == "exit" and code in (0, None)):
        return Outcome(
            TaskState.SUCCEEDED, exit_code, signal_text, None, "Task succeeded"
        )
    if kind == "error" and report is not None:
        return _failed_with_exception(report, exit_code, signal_text)
    if kind == "exit" and report is not None:
        return _failed_with_exit(report, signal_text)
    return _crashed(exit_code, signal_text, stderr_tail)


def _failed_with_exception(
    report: dict[str, Any], exit_code: int | None, signal_text: str | None
) -> Outcome:
    error = ErrorInfo(
        type=str(report.get("type", "Exception")),
        message=str(report.get("message", "")),
        traceback=str(report.get("traceback", "")),
    )
    summary = f"Task failed: {error.type}: {error.message}"
    return Outcome(TaskState.FAILED, exit_code, signal_text, error, summary)


def _failed_with_exit(report: dict[str, Any], signal_text: str | None) -> Outcome:
    code = report.get("code")
    exit_code = code if isinstance(code, int) else 1
    message = report.get("message")
    text = str(message) if message is not None else f"exit code {exit_code}"
    error = ErrorInfo(type="SystemExit", message=text, traceback="")
    summary = f"Task failed: SystemExit with exit code {exit_code}"
    return Outcome(TaskState.FAILED, exit_code, signal_text, error, summary)


def _crashed(
    exit_code: int | None, signal_text: str | None, stderr_tail: str
) -> Outcome:
    if signal_text is not None:
        cause = f"was killed by {signal_text}"
    elif exit_code is not None:
        cause = f"exited with code {exit_code}"
    else:
        cause = "ended"
    message = f"the child process {cause} without reporting a result"
    error = ErrorInfo(type="crashed", message=message, traceback=stderr_tail)
    return Outcome(
        TaskState.CRASHED, exit_code, signal_text, error, f"Task crashed: {message}"
    )
