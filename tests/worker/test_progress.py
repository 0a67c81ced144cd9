"""What a log frame carries for each progress value a job passes."""

from __future__ import annotations

import decimal
import fractions
import math

import pytest

from worker._progress import coerce_progress

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10, (10, None)),
        (50, (50, None)),
        (30, (30, None)),
        (200, (200, None)),
        (-5, (-5, None)),
        (99.9999, (99.9999, None)),
        (math.inf, (100, None)),
        (-math.inf, (0, None)),
        (None, (None, None)),
        (math.nan, (None, "nan")),
        ("abc", (None, "'abc'")),
        ("75", (None, "'75'")),
        (True, (None, "True")),
        (False, (None, "False")),
        (object, (None, "<class 'object'>")),
    ],
)
def test_progress_value(value: object, expected: tuple[object, object]) -> None:
    assert coerce_progress(value) == expected


def test_numbers_are_sent_with_their_type() -> None:
    assert type(coerce_progress(10)[0]) is int
    assert type(coerce_progress(99.5)[0]) is float


def test_decimal_and_fraction_become_float() -> None:
    assert coerce_progress(decimal.Decimal("12.5")) == (12.5, None)
    assert coerce_progress(fractions.Fraction(1, 4)) == (0.25, None)


def test_decimal_nan_is_invalid() -> None:
    assert coerce_progress(decimal.Decimal("NaN")) == (None, "Decimal('NaN')")
    assert coerce_progress(decimal.Decimal("sNaN")) == (None, "Decimal('sNaN')")


def test_huge_numbers_act_like_infinity() -> None:
    assert coerce_progress(10**30) == (100, None)
    assert coerce_progress(-(10**30)) == (0, None)
    assert coerce_progress(fractions.Fraction(10**400, 3)) == (100, None)


def test_long_invalid_repr_is_cut() -> None:
    _, invalid = coerce_progress("x" * 1000)

    assert invalid == "'" + "x" * 199 + "…"
