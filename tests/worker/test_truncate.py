"""Cutting texts, options and frames down to the size limits."""

from __future__ import annotations

import orjson
import pytest

from worker._truncate import cut_text, fit_frame, limit_options

pytestmark = pytest.mark.timeout(30)


def test_short_text_is_unchanged() -> None:
    assert cut_text("short", 5) == "short"


def test_long_text_ends_with_marker() -> None:
    text = "a" * 10 + "b" * 1_048_576

    assert cut_text(text, 10) == "a" * 10 + "… [truncated 1048576 characters]"


def test_keep_end_keeps_the_tail() -> None:
    assert cut_text("0123456789", 4, keep_end=True) == (
        "[truncated 6 characters] …6789"
    )


def test_small_options_are_unchanged() -> None:
    encoded = orjson.dumps({"a": 1})

    assert limit_options(encoded, 100) is encoded


def test_largest_option_is_replaced_first() -> None:
    options = {"big": "x" * 5000, "medium": "y" * 500, "small": 1}

    limited = orjson.loads(limit_options(orjson.dumps(options), 1000))

    assert limited == {
        "big": "… [truncated 5002 bytes]",
        "medium": "y" * 500,
        "small": 1,
    }


def test_options_are_replaced_until_they_fit() -> None:
    options = {"a": "x" * 3000, "b": "y" * 2000, "c": "z" * 100}

    limited = limit_options(orjson.dumps(options), 1000)

    assert len(limited) <= 1000
    assert orjson.loads(limited) == {
        "a": "… [truncated 3002 bytes]",
        "b": "… [truncated 2002 bytes]",
        "c": "z" * 100,
    }


def test_many_keys_replace_whole_options() -> None:
    options = {f"key{number}": number for number in range(1000)}
    encoded = orjson.dumps(options)

    limited = limit_options(encoded, 200)

    assert orjson.loads(limited) == {"options": f"… [truncated {len(encoded)} bytes]"}


def test_tiny_limit_gives_empty_options() -> None:
    assert limit_options(orjson.dumps({"a": "x" * 100}), 10) == b"{}"


def test_fit_frame_cuts_text_to_max_chars() -> None:
    frame = {"k": "log", "message": "m" * 100}

    encoded = fit_frame(frame, {"message": 10}, 10_000)

    assert orjson.loads(encoded) == {
        "k": "log",
        "message": "m" * 10 + "… [truncated 90 characters]",
    }


def test_fit_frame_cuts_escaped_text_to_byte_limit() -> None:
    """Control characters take six bytes each in JSON, so chars alone do not fit."""
    frame = {"k": "log", "message": "\x01" * 1000}

    encoded = fit_frame(frame, {"message": 1000}, 2000)

    assert len(encoded) <= 2000
    assert encoded.endswith(b"\n")
    message = orjson.loads(encoded)["message"]
    kept = message.partition("…")[0]
    assert message == kept + f"… [truncated {1000 - len(kept)} characters]"
    assert len(kept) > 200


def test_fit_frame_cuts_longest_field_first() -> None:
    frame = {"k": "error", "message": "m" * 50, "traceback": "t" * 5000}

    encoded = fit_frame(frame, {"message": 1000, "traceback": 5000}, 1000)

    decoded = orjson.loads(encoded)
    assert len(encoded) <= 1000
    assert decoded["message"] == "m" * 50
    assert decoded["traceback"].startswith("t" * 100)
