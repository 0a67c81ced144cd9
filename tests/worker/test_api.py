"""The public functions, with and without a supervisor receiving the frames."""

from __future__ import annotations

import datetime
import decimal
import logging
import math
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.worker.conftest import PipeEnd
from worker import (
    WebSocketLogHandler,
    get_progress,
    increment_progress,
    logging_helper,
    set_task_info,
)

pytestmark = pytest.mark.timeout(30)


class CodedError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def test_unsupervised_messages_go_to_worker_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    logging_helper("started", progress=5)
    logging_helper("slow table", message_type="warning")
    logging_helper("failed", message_type="error", options={"table": "Sales"})
    logging_helper("odd type", message_type="<script>")

    assert caplog.record_tuples == [
        ("worker", logging.INFO, "started"),
        ("worker", logging.WARNING, "slow table"),
        ("worker", logging.ERROR, "failed"),
        ("worker", logging.INFO, "odd type"),
    ]
    assert caplog.records[0].__dict__["progress"] == 5
    assert caplog.records[2].__dict__["options"] == {"table": "Sales"}


def test_unsupervised_lines_name_task_after_set_task_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    set_task_info("task-7", 4)
    increment_progress()

    logging_helper("step done")

    assert caplog.record_tuples == [("worker", logging.INFO, "task task-7: step done")]
    assert caplog.records[0].__dict__["task_id"] == "task-7"
    assert caplog.records[0].__dict__["progress"] == 25


def test_percent_signs_are_sent_literally(
    supervised: PipeEnd, caplog: pytest.LogCaptureFixture
) -> None:
    logging_helper("100% done %s")

    (frame,) = supervised.frames()
    assert frame["message"] == "100% done %s"


def test_unsupervised_percent_signs_are_logged_literally(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)

    logging_helper("100% done %s")

    assert caplog.record_tuples == [("worker", logging.INFO, "100% done %s")]


def test_supervised_message_is_sent_not_logged(
    supervised: PipeEnd, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    logging_helper("converted", progress=40, message_type="warning", options={"n": 1})

    (frame,) = supervised.frames()
    del frame["ts"]
    assert frame == {
        "k": "log",
        "message": "converted",
        "message_type": "warning",
        "progress": 40,
        "options": {"n": 1},
    }
    assert caplog.record_tuples == []


@pytest.mark.parametrize(
    ("progress", "sent", "invalid"),
    [
        (10, 10, None),
        (50, 50, None),
        (30, 30, None),
        (200, 200, None),
        (-5, -5, None),
        ("abc", None, "'abc'"),
        (math.nan, None, "nan"),
        (math.inf, 100, None),
        (None, None, None),
        (True, None, "True"),
        ("75", None, "'75'"),
        (99.9999, 99.9999, None),
    ],
)
def test_progress_values_in_frames(
    supervised: PipeEnd, progress: object, sent: object, invalid: object
) -> None:
    logging_helper("step", progress=progress)  # type: ignore[arg-type]

    (frame,) = supervised.frames()
    assert frame["progress"] == sent
    assert frame.get("progress_invalid") == invalid


def test_missing_progress_uses_step_counter(supervised: PipeEnd) -> None:
    set_task_info("ignored-in-child", 3)
    logging_helper("before")
    increment_progress()
    logging_helper("after one step")
    logging_helper("explicit", progress=90)

    frames = supervised.frames()
    assert [frame["progress"] for frame in frames] == [0, 33, 90]


def test_hostile_options_never_raise(supervised: PipeEnd) -> None:
    lock = threading.Lock()
    recursive: list[object] = [1]
    recursive.append(recursive)

    logging_helper("odd", options={"callback": lambda: 1, "lock": lock})
    logging_helper("coded", options={"error": CodedError("disk full", 28)})
    logging_helper("loop", options={"items": recursive, "big": 2**80})
    logging_helper(
        "typed",
        options={
            "when": datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC),
            "amount": decimal.Decimal("1.5"),
            "id": uuid.UUID(int=0),
            "tags": {"b", "a"},
            "path": Path("exports/sales.tmdl"),
            1: "int key",
            None: "none key",
            "raw": b"\xff",
        },
    )

    frames = supervised.frames()
    assert frames[0]["options"]["lock"] == repr(lock)
    assert frames[0]["options"]["callback"].startswith("<function ")
    assert frames[1]["options"]["error"] == "CodedError('disk full')"
    assert frames[2]["options"] == {"items": [1, "[...]"], "big": str(2**80)}
    assert frames[3]["options"] == {
        "when": "2024-01-02T00:00:00+00:00",
        "amount": "1.5",
        "id": "00000000-0000-0000-0000-000000000000",
        "tags": ["a", "b"],
        "path": "exports/sales.tmdl",
        "1": "int key",
        "null": "none key",
        "raw": "\\xff",
    }


def test_non_string_message_sent_as_text(supervised: PipeEnd) -> None:
    logging_helper(ValueError("bad"))  # type: ignore[arg-type]
    logging_helper("typed", message_type=3)  # type: ignore[arg-type]

    first, second = supervised.frames()
    assert first["message"] == "bad"
    assert second["message_type"] == "3"


def test_closed_reader_falls_back_to_logging(
    supervised: PipeEnd,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    supervised.close()

    logging_helper("first")
    logging_helper("second", message_type="error")

    assert caplog.record_tuples == [
        ("worker", logging.INFO, "task task-1: first"),
        ("worker", logging.ERROR, "task task-1: second"),
    ]
    assert capsys.readouterr().err == (
        "worker: task task-1: cannot send log messages (BrokenPipeError(32, "
        "'Broken pipe')); they go to the 'worker' logger instead\n"
    )


def test_closed_channel_with_root_handler_does_not_recurse(
    supervised: PipeEnd,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    handler = WebSocketLogHandler()
    logging.getLogger().addHandler(handler)
    try:
        supervised.close()
        logging_helper("after cancel")
        logging.getLogger("tests.job").warning("job line")
    finally:
        logging.getLogger().removeHandler(handler)

    assert caplog.record_tuples == [
        ("worker", logging.INFO, "task task-1: after cancel"),
        ("tests.job", logging.WARNING, "job line"),
    ]
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_threads_log_concurrently(supervised: PipeEnd) -> None:
    received: list[dict[str, Any]] = []
    done = threading.Event()

    def drain() -> None:
        while not done.is_set():
            received.extend(supervised.frames())
        received.extend(supervised.frames())

    reader = threading.Thread(target=drain)
    reader.start()

    def log(thread: int) -> None:
        for number in range(200):
            logging_helper("x" * 2000, options={"thread": thread, "number": number})

    writers = [threading.Thread(target=log, args=(n,)) for n in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(20)
    done.set()
    reader.join(10)

    assert len(received) == 800
    for thread in range(4):
        options = [f["options"] for f in received if f["options"]["thread"] == thread]
        assert [option["number"] for option in options] == list(range(200))


def test_step_counter_counts_to_hundred() -> None:
    assert get_progress() is None
    assert increment_progress() is None

    set_task_info("task-2", 4)

    assert get_progress() == 0
    assert [increment_progress() for _ in range(5)] == [25, 50, 75, 100, 100]
    assert get_progress() == 100


def test_set_task_info_restarts_count() -> None:
    set_task_info("task-3", 2)
    increment_progress()

    set_task_info("task-3", 3)

    assert get_progress() == 0
    assert increment_progress() == 33


def test_zero_or_no_steps_give_no_percentage() -> None:
    set_task_info("task-4", 0)
    assert increment_progress() is None

    set_task_info("task-4", None)
    assert get_progress() is None


@pytest.mark.parametrize(
    ("task_id", "total_steps", "error", "message"),
    [
        (7, 3, TypeError, "task_id must be a str, not 7"),
        ("t", 2.5, TypeError, "total_steps must be an int or None, not 2.5"),
        ("t", True, TypeError, "total_steps must be an int or None, not True"),
        ("t", -1, ValueError, "total_steps must be 0 or more, not -1"),
    ],
)
def test_set_task_info_rejects_invalid_values(
    task_id: object, total_steps: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{message}$"):
        set_task_info(task_id, total_steps)  # type: ignore[arg-type]
