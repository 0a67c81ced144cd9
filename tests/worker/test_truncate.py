"""Cutting texts, options and frames down to the size limits."""

from __future__ import annotations

import orjson
import pytest

from worker._truncate import cut_text, fit_frame, limit_options

pytestmark = pytest.mark.timeout(30)


def test_short_text_is_unchanged() -> None:
    assert cut_text("short", 5) == "short"


def test_long_text_ends_with_marker() -> None:
    text = "a" * 40 + "b" * 1_048_576

    cut = cut_text(text, 42)

    assert cut == "a" * 10 + "… [truncated 1048606 characters]"
    assert len(cut) == 42


def test_marker_gaining_a_digit_still_fits() -> None:
    """Removing 999 characters would fit with a 3-digit count; 1000 needs 4."""
    text = "x" * (999 + 30)

    cut = cut_text(text, 30)

    assert len(cut) <= 30
    assert cut.endswith(f"… [truncated {len(text) - cut.index('…')} characters]")


def test_text_one_over_limit_is_cut() -> None:
    cut = cut_text("y" * 101, 100)

    assert cut == "y" * 73 + "… [truncated 28 characters]"
    assert len(cut) == 100


def test_limit_shorter_than_marker_gives_marker() -> None:
    assert cut_text("z" * 100, 5) == "… [truncated 100 characters]"


def test_keep_end_keeps_the_tail() -> None:
    cut = cut_text("0123456789" * 10, 30, keep_end=True)

    assert cut == "[truncated 97 characters] …789"
    assert len(cut) == 30


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

    encoded = fit_frame(frame, {"message": 50}, 10_000)

    assert orjson.loads(encoded) == {
        "k": "log",
        "message": "m" * 23 + "… [truncated 77 characters]",
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
