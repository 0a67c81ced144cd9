"""Conversion of the progress a job passes into the value a log frame carries.

The child only makes the value JSON-safe and flags what is not a number; the
supervisor warns about flagged values and applies the range and monotonicity
rules, so those are not repeated here.
"""

from __future__ import annotations

import math
import numbers

from worker._jsonsafe import safe_repr

_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1
_MAX_REPR_CHARS = 200

Progress = int | float | None


def coerce_progress(value: object) -> tuple[Progress, str | None]:
    """Return the progress to send and, for an unusable value, its repr.

    A finite int or float is sent as is; +inf becomes 100 and -inf 0; Decimal,
    Fraction and other real numbers are converted to float first. NaN, bools,
    strings (even ``"75"``) and other objects give ``(None, repr(value))``.
    None means the call carried no progress and gives ``(None, None)``.
    """
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool):
        return _from_int(value), None
    number = _as_float(value)
    if number is None or math.isnan(number):
        return None, _describe(value)
    if math.isinf(number):
        return (100 if number > 0 else 0), None
    return number, None


def _from_int(value: int) -> int:
    if _INT_MIN <= value <= _INT_MAX:
        return int(value)
    return 100 if value > 0 else 0


def _as_float(value: object) -> float | None:
    if isinstance(value, (bool, str, bytes)):
        return None
    if isinstance(value, float):
        return float(value)
    if not isinstance(value, numbers.Real) and not _is_decimal(value):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return _infinity_with_sign_of(value)
    except Exception:
        # float() of a signalling NaN Decimal raises; treat like NaN.
        return None


def _infinity_with_sign_of(value: object) -> float | None:
    try:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]
    except Exception:
        return None


def _is_decimal(value: object) -> bool:
    # Decimal is not registered as numbers.Real; import it only when needed.
    from decimal import Decimal

    return isinstance(value, Decimal)


def _describe(value: object) -> str:
    text = safe_repr(value)
    if len(text) > _MAX_REPR_CHARS:
        return text[:_MAX_REPR_CHARS] + "…"
    return text
