"""The logging handler that sends records to the supervisor."""

from __future__ import annotations

import logging

import pytest

from tests.worker.conftest import PipeEnd
from worker import WebSocketLogHandler, increment_progress, set_task_info

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def job_logger() -> logging.Logger:
    """A logger outside the logging tree, so pytest's own handlers stay away.

    pytest's capture handlers raise on a record that cannot be formatted.
    """
    logger = logging.Logger("tests.worker.handler", logging.DEBUG)  # noqa: LOG001
    logger.addHandler(WebSocketLogHandler())
    return logger


@pytest.mark.parametrize(
    ("level", "message_type"),
    [
        (logging.DEBUG, "info"),
        (logging.INFO, "info"),
        (logging.WARNING, "warning"),
        (logging.ERROR, "error"),
        (logging.CRITICAL, "error"),
    ],
)
def test_level_maps_to_message_type(
    supervised: PipeEnd, job_logger: logging.Logger, level: int, message_type: str
) -> None:
    job_logger.log(level, "table %s converted", "Sales")

    (frame,) = supervised.frames()
    assert frame["message"] == "table Sales converted"
    assert frame["message_type"] == message_type
    assert frame["progress"] is None


def test_record_uses_step_counter(
    supervised: PipeEnd, job_logger: logging.Logger
) -> None:
    set_task_info("task-1", 2)
    increment_progress()

    job_logger.info("half way")

    assert supervised.frames()[0]["progress"] == 50


def test_record_uses_handler_formatter(
    supervised: PipeEnd, job_logger: logging.Logger
) -> None:
    job_logger.handlers[0].setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    job_logger.warning("careful")

    assert supervised.frames()[0]["message"] == "WARNING careful"


def test_exception_text_is_appended(
    supervised: PipeEnd, job_logger: logging.Logger
) -> None:
    try:
        raise KeyError("Sales")
    except KeyError:
        job_logger.exception("failed")

    message = supervised.frames()[0]["message"]
    assert message.startswith("failed\nTraceback (most recent call last):")
    assert message.endswith("KeyError: 'Sales'")


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (("copied %d files (100%)", 5), "copied %d files (100%) [arguments: (5,)]"),
        (("%s and %s", "one"), "%s and %s [arguments: ('one',)]"),
        (("config %(a)s", {"a": 1}), "config 1"),
    ],
)
def test_malformed_calls_send_raw_text(
    supervised: PipeEnd,
    job_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
    call: tuple[object, ...],
    expected: str,
) -> None:
    job_logger.info(*call)
    job_logger.info(*call)

    frames = supervised.frames()
    assert [frame["message"] for frame in frames] == [expected, expected]
    assert len(capsys.readouterr().err.splitlines()) <= 1


def test_failed_format_keeps_exception_text(
    supervised: PipeEnd, job_logger: logging.Logger
) -> None:
    try:
        raise KeyError("Sales")
    except KeyError:
        job_logger.exception("failed %d", "x")

    message = supervised.frames()[0]["message"]
    assert message.startswith("failed %d [arguments: ('x',)]\nTraceback")
    assert message.endswith("KeyError: 'Sales'")


def test_emit_failure_writes_one_stderr_line(
    supervised: PipeEnd,
    job_logger: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    class BrokenFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            raise RuntimeError("formatter broke")

    job_logger.handlers[0].setFormatter(BrokenFormatter())

    job_logger.info("one %s", 1)
    job_logger.info("two")

    assert [frame["message"] for frame in supervised.frames()] == [
        "one %s [arguments: (1,)]",
        "two [arguments: ()]",
    ]
    assert capsys.readouterr().err == (
        "worker: task task-1: a log record could not be formatted "
        "(RuntimeError('formatter broke')); it is sent with its arguments shown\n"
    )


def test_recursion_error_propagates(
    supervised: PipeEnd, job_logger: logging.Logger
) -> None:
    handler = job_logger.handlers[0]

    class DeepFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            raise RecursionError("too deep")

    handler.setFormatter(DeepFormatter())
    record = job_logger.makeRecord(job_logger.name, logging.INFO, "f", 1, "x", (), None)

    with pytest.raises(RecursionError):
        handler.emit(record)


def test_unsupervised_handler_sends_and_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    root = logging.getLogger()
    handler = WebSocketLogHandler()
    root.addHandler(handler)
    try:
        logging.getLogger("tests.job").info("plain line")
    finally:
        root.removeHandler(handler)

    assert caplog.record_tuples == [("tests.job", logging.INFO, "plain line")]


def test_handler_level_argument() -> None:
    assert WebSocketLogHandler().level == logging.NOTSET
    assert WebSocketLogHandler(logging.WARNING).level == logging.WARNING
