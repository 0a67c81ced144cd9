"""Encoding of values that JSON cannot hold as they are."""

from __future__ import annotations

import datetime
import decimal
import threading
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from worker._jsonsafe import (
    MAX_DEPTH,
    dumps,
    exception_text,
    safe_repr,
    text_of,
    to_jsonable,
    type_name,
)

pytestmark = pytest.mark.timeout(30)


class CodedError(Exception):
    """An exception that cannot be pickled: __init__ takes two arguments."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr is broken")

    def __str__(self) -> str:
        raise RuntimeError("str is broken")


def roundtrip(value: object) -> Any:
    return orjson.loads(dumps(value))


def test_aware_datetime_becomes_iso_with_offset() -> None:
    when = datetime.datetime(2024, 5, 1, 12, 30, 5, 123456, tzinfo=datetime.UTC)

    assert roundtrip({"when": when}) == {"when": "2024-05-01T12:30:05.123456+00:00"}


def test_naive_datetime_stays_naive() -> None:
    when = datetime.datetime(2024, 5, 1, 12, 30)

    assert roundtrip(when) == "2024-05-01T12:30:00"


def test_date_and_time_become_iso() -> None:
    value = [datetime.date(2024, 5, 1), datetime.time(8, 15)]

    assert roundtrip(value) == ["2024-05-01", "08:15:00"]


def test_decimal_uuid_and_path_become_strings() -> None:
    identifier = uuid.UUID("12345678-1234-5678-1234-567812345678")
    value = {
        "amount": decimal.Decimal("1.50"),
        "id": identifier,
        "path": Path("exports/sales.tmdl"),
    }

    assert roundtrip(value) == {
        "amount": "1.50",
        "id": "12345678-1234-5678-1234-567812345678",
        "path": "exports/sales.tmdl",
    }


def test_sets_become_sorted_lists() -> None:
    assert roundtrip({"b", "c", "a"}) == ["a", "b", "c"]
    assert roundtrip(frozenset({3, 1, 2})) == [1, 2, 3]


def test_unsortable_set_becomes_list() -> None:
    assert sorted(roundtrip({1, "a"}), key=str) == [1, "a"]


def test_int_and_none_keys_become_strings() -> None:
    assert roundtrip({1: "int key", None: "none key"}) == {
        "1": "int key",
        "null": "none key",
    }


def test_tuple_key_becomes_its_repr() -> None:
    assert roundtrip({(1, 2): "pair", "plain": 1}) == {"(1, 2)": "pair", "plain": 1}


def test_bytes_are_decoded_with_escapes() -> None:
    assert roundtrip({"raw": b"ok \xff"}) == {"raw": "ok \\xff"}


def test_lambda_and_lock_become_repr() -> None:
    lock = threading.Lock()
    callback = lambda: 1  # noqa: E731

    encoded = roundtrip({"callback": callback, "lock": lock})

    assert encoded == {"callback": repr(callback), "lock": repr(lock)}


def test_unpicklable_exception_without_traceback_becomes_repr() -> None:
    assert roundtrip({"error": CodedError("disk full", 28)}) == {
        "error": "CodedError('disk full (code 28)')"
    }


def test_raised_exception_carries_traceback_text() -> None:
    try:
        raise CodedError("disk full", 28)
    except CodedError as exc:
        error = exc

    text = roundtrip(error)

    assert text.startswith("CodedError('disk full (code 28)')\nTraceback")
    assert "raise CodedError" in text
    assert text.endswith("CodedError: disk full (code 28)")


def test_recursive_list_is_cut_at_recursion() -> None:
    items: list[object] = [1]
    items.append(items)

    assert roundtrip(items) == [1, "[...]"]


def test_recursive_dict_is_cut_at_recursion() -> None:
    mapping: dict[str, object] = {"a": 1}
    mapping["self"] = mapping

    assert roundtrip(mapping) == {"a": 1, "self": "{...}"}


def test_deep_nesting_is_cut_at_max_depth() -> None:
    value: list[object] = []
    for _ in range(MAX_DEPTH + 100):  # deeper than orjson goes
        value = [value]

    encoded = roundtrip(value)

    for _ in range(MAX_DEPTH):
        encoded = encoded[0]
    assert encoded == f"<list nested deeper than {MAX_DEPTH} levels>"


def test_raising_repr_gives_type_name() -> None:
    expected = "<tests.worker.test_jsonsafe.BrokenRepr object (repr() failed)>"

    assert roundtrip({"x": BrokenRepr()}) == {"x": expected}


def test_huge_int_becomes_string() -> None:
    assert roundtrip({"big": 2**70, "small": -(2**63)}) == {
        "big": str(2**70),
        "small": -(2**63),
    }


def test_int_too_long_for_str_names_its_size() -> None:
    assert roundtrip(10**5000) == f"<int of {(10**5000).bit_length()} bits>"


def test_lone_surrogate_is_escaped() -> None:
    assert roundtrip({"text": "a\udc80b", "k\udcff": 1}) == {
        "text": "a\\udc80b",
        "k\\udcff": 1,
    }


def test_fallback_keeps_other_conversions() -> None:
    """A value orjson rejects sends the rest through the same conversions."""
    value = {"big": 2**70, "when": datetime.date(2024, 5, 1), 1: {"b", "a"}}

    assert roundtrip(value) == {
        "big": str(2**70),
        "when": "2024-05-01",
        "1": ["a", "b"],
    }


def test_dumps_newline_ends_line() -> None:
    assert dumps({"a": 1}, newline=True) == b'{"a":1}\n'


def test_to_jsonable_passes_fragment_through() -> None:
    fragment = orjson.Fragment(b"{}")

    assert to_jsonable({"f": fragment})["f"] is fragment


def test_safe_repr_of_raising_repr() -> None:
    assert safe_repr(BrokenRepr()) == (
        "<tests.worker.test_jsonsafe.BrokenRepr object (repr() failed)>"
    )


def test_text_of_raising_str_falls_back_to_repr() -> None:
    assert text_of(BrokenRepr()).endswith("BrokenRepr object (repr() failed)>")
    assert text_of(12) == "12"


def test_type_name_is_bare_for_builtins() -> None:
    assert type_name(ValueError) == "ValueError"
    assert type_name(CodedError) == "tests.worker.test_jsonsafe.CodedError"


def test_exception_text_without_traceback_is_repr() -> None:
    assert exception_text(ValueError("x")) == "ValueError('x')"
