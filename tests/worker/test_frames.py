"""Encoding of the frames the child writes, within the size limits."""

from __future__ import annotations

import datetime
import decimal
import time
import types
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from worker import Limits
from worker._frames import (
    CANCELLED_FRAME,
    MAX_MESSAGE_TYPE_CHARS,
    encode_error,
    encode_exit,
    encode_log,
    encode_result,
)

pytestmark = pytest.mark.timeout(30)

LIMITS = Limits()
SMALL = Limits(max_message_chars=1000, max_options_bytes=1000)


def decode(frame: bytes) -> Any:
    assert frame.endswith(b"\n")
    assert frame.count(b"\n") == 1
    return orjson.loads(frame)


def log(message: str = "hello", **changes: Any) -> Any:
    arguments: dict[str, Any] = {
        "progress": None,
        "progress_invalid": None,
        "message_type": "info",
        "options": None,
        "limits": LIMITS,
    }
    arguments.update(changes)
    return encode_log(message, **arguments)


def test_log_frame_fields() -> None:
    before = time.time()

    frame = decode(log("hello", progress=12.5, options={"table": "Sales"}))

    assert frame.pop("ts") >= before
    assert frame == {
        "k": "log",
        "message": "hello",
        "message_type": "info",
        "progress": 12.5,
        "options": {"table": "Sales"},
    }


def test_log_frame_flags_invalid_progress() -> None:
    frame = decode(log(progress=None, progress_invalid="'abc'"))

    assert frame["progress"] is None
    assert frame["progress_invalid"] == "'abc'"


def test_log_frame_without_invalid_progress_has_no_flag() -> None:
    assert "progress_invalid" not in decode(log(progress=50))


def test_log_frame_encodes_hostile_options() -> None:
    options = {
        "when": datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC),
        "amount": decimal.Decimal("1.5"),
        "id": uuid.UUID(int=1),
        "tags": {"a", "b"},
        "path": Path("exports/sales.tmdl"),
        1: "int key",
        None: "none key",
        "raw": b"\xff",
    }

    assert decode(log(options=options))["options"] == {
        "when": "2024-05-01T00:00:00+00:00",
        "amount": "1.5",
        "id": "00000000-0000-0000-0000-000000000001",
        "tags": ["a", "b"],
        "path": "exports/sales.tmdl",
        "1": "int key",
        "null": "none key",
        "raw": "\\xff",
    }


def test_log_frame_accepts_mapping_options() -> None:
    options = types.MappingProxyType({"a": 1})

    assert decode(log(options=options))["options"] == {"a": 1}


def test_log_frame_wraps_options_that_are_no_mapping() -> None:
    assert decode(log(options=[1, 2]))["options"] == {"options": [1, 2]}


def test_long_message_is_cut_with_marker() -> None:
    message = "m" * (1000 + 1_048_576)

    frame = log(message, limits=SMALL)

    assert len(frame) <= SMALL.max_frame_bytes
    text = decode(frame)["message"]
    assert len(text) == SMALL.max_message_chars
    assert text == "m" * 968 + "… [truncated 1048608 characters]"


def test_escaped_message_still_fits_frame_limit() -> None:
    """Each NUL takes six bytes in JSON, more than the frame limit allows for."""
    limits = Limits(max_message_chars=3000, max_options_bytes=10)

    frame = log("\x00" * 3000, limits=limits)

    assert len(frame) <= limits.max_frame_bytes
    message = decode(frame)["message"]
    kept = message.partition("…")[0]
    assert kept == "\x00" * len(kept)
    assert message.endswith(f"… [truncated {3000 - len(kept)} characters]")


def test_large_options_are_cut_with_marker() -> None:
    options = {"xml": "<a/>" * 100_000, "table": "Sales"}

    frame = log(options=options, limits=SMALL)

    assert len(frame) <= SMALL.max_frame_bytes
    assert decode(frame)["options"] == {
        "xml": "… [truncated 400002 bytes]",
        "table": "Sales",
    }


def test_long_message_type_is_cut() -> None:
    frame = decode(log(message_type="<script>" * 100))

    assert frame["message_type"].startswith("<script>" * 4)
    assert frame["message_type"].endswith("… [truncated 764 characters]")
    assert len(frame["message_type"]) == MAX_MESSAGE_TYPE_CHARS


def test_result_frame_carries_jsonsafe_value() -> None:
    frame = decode(encode_result({"files": {Path("a.tmdl")}}, LIMITS))

    assert frame == {"k": "result", "value": {"files": ["a.tmdl"]}}


def test_large_result_is_replaced_by_marker() -> None:
    frame = encode_result(["x" * 100] * 100, SMALL)

    assert decode(frame) == {"k": "result", "value": "… [truncated 10301 bytes]"}


def test_error_frame_fields() -> None:
    try:
        raise KeyError("Sales")
    except KeyError as exc:
        frame = decode(encode_error(exc, LIMITS))

    assert frame["k"] == "error"
    assert frame["type"] == "KeyError"
    assert frame["message"] == "'Sales'"
    assert frame["traceback"].startswith("Traceback (most recent call last):")
    assert frame["traceback"].endswith("KeyError: 'Sales'")


def test_error_frame_keeps_end_of_long_traceback() -> None:
    try:
        raise ValueError("v" * 5000)
    except ValueError as exc:
        frame = encode_error(exc, SMALL)

    decoded = decode(frame)
    assert len(frame) <= SMALL.max_frame_bytes
    assert len(decoded["message"]) == SMALL.max_message_chars
    assert decoded["message"].endswith("… [truncated 4029 characters]")
    assert decoded["traceback"].startswith("[truncated ")
    assert decoded["traceback"].endswith("v" * 100)


def test_exit_frames() -> None:
    assert decode(encode_exit(3, None, LIMITS)) == {
        "k": "exit",
        "code": 3,
        "message": None,
    }
    assert decode(encode_exit(1, "disk full", LIMITS))["message"] == "disk full"


def test_cancelled_frame() -> None:
    assert decode(CANCELLED_FRAME) == {"k": "cancelled"}
