"""Encoding of arbitrary job values as JSON, the only thing that crosses the pipe.

orjson encodes the common types itself and calls `_default` for the rest, which
turns each value into a string or a list and never raises. Values orjson rejects
outright (strings with lone surrogates, ints beyond 64 bits, recursive or very
deep containers, dict keys of other types than str, int, float, bool, None, date
and time, enum and UUID) send the whole value through `to_jsonable`, a slower
walk in Python that produces only JSON types.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

import orjson

JSONValue: TypeAlias = (
    bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
)

_OPTIONS = orjson.OPT_NON_STR_KEYS
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
#: Nesting kept by `to_jsonable`; orjson itself gives up at 255 levels.
MAX_DEPTH = 200

Converter: TypeAlias = Callable[[Any], "str | list[object]"]

#: Converter chosen for each type met so far; bounded for jobs making classes.
_CONVERTERS: dict[type, Converter] = {}
_MAX_CACHED_TYPES = 256


def dumps(value: object, *, newline: bool = False) -> bytes:
    """Encode ``value`` as JSON, turning what JSON cannot hold into text.

    Raises only for a failure outside the value itself, such as a dict that
    another thread changes while it is encoded, or a full stack.
    """
    option = _OPTIONS | orjson.OPT_APPEND_NEWLINE if newline else _OPTIONS
    try:
        return orjson.dumps(value, default=_default, option=option)
    except orjson.JSONEncodeError:
        return orjson.dumps(to_jsonable(value), option=option)


def to_jsonable(value: object) -> Any:
    """Return ``value`` as JSON types only: str keys, valid text, 64-bit ints.

    A container that contains itself becomes ``"[...]"`` or ``"{...}"`` at the
    point of recursion, as in ``repr``. ``orjson.Fragment`` values pass through.
    """
    return _walk(value, set(), 0)


def safe_repr(value: object) -> str:
    """Return ``repr(value)``, or a text naming the type when repr raises."""
    try:
        return repr(value)
    except Exception:
        return f"<{type_name(type(value))} object (repr() failed)>"


def text_of(value: object) -> str:
    """Return ``str(value)``, or `safe_repr` when str raises."""
    if type(value) is str:
        return value
    try:
        return str(value)
    except Exception:
        return safe_repr(value)


def type_name(cls: type) -> str:
    """Return ``module.QualName`` of a class, or the bare name of a builtin."""
    name = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", "?")
    module = getattr(cls, "__module__", None)
    if module in (None, "builtins"):
        return str(name)
    return f"{module}.{name}"


def exception_text(exc: BaseException) -> str:
    """Return the repr of ``exc`` followed by its traceback, when it has one."""
    if exc.__traceback__ is None:
        return safe_repr(exc)
    return safe_repr(exc) + "\n" + "".join(traceback.format_exception(exc)).rstrip()


def _default(value: object) -> str | list[object]:
    try:
        return _converter_for(type(value))(value)
    except Exception:
        return safe_repr(value)


def _converter_for(cls: type) -> Converter:
    converter = _CONVERTERS.get(cls)
    if converter is None:
        converter = _choose_converter(cls)
        if len(_CONVERTERS) < _MAX_CACHED_TYPES:
            _CONVERTERS[cls] = converter
    return converter


def _choose_converter(cls: type) -> Converter:
    # Imported here so that importing the package stays cheap; these modules
    # are only needed once a job passes one of their types.
    import datetime
    import decimal
    import pathlib
    import uuid

    if issubclass(cls, BaseException):
        return exception_text
    if issubclass(cls, (set, frozenset)):
        return _sorted_list
    if issubclass(cls, (bytes, bytearray, memoryview)):
        return _decode_bytes
    if issubclass(cls, (datetime.date, datetime.time)):
        return _isoformat
    if issubclass(cls, (decimal.Decimal, uuid.UUID, pathlib.PurePath)):
        return str
    return safe_repr


def _sorted_list(items: Iterable[object]) -> list[object]:
    try:
        return sorted(items)  # type: ignore[type-var]
    except Exception:
        return list(items)


def _decode_bytes(data: bytes | bytearray | memoryview) -> str:
    return bytes(data).decode("utf-8", errors="backslashreplace")


def _isoformat(value: Any) -> str:
    return str(value.isoformat())


def _walk(value: object, ancestors: set[int], depth: int) -> Any:
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        return _valid_text(value)
    if isinstance(value, int):
        return _json_int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, orjson.Fragment):
        return value
    if isinstance(value, (dict, list, tuple)):
        return _walk_container(value, ancestors, depth)
    converted = _default(value)
    if isinstance(converted, list):
        return _walk_container(converted, ancestors, depth)
    return _valid_text(converted)


def _walk_container(
    value: dict[Any, Any] | list[Any] | tuple[Any, ...], ancestors: set[int], depth: int
) -> Any:
    is_dict = isinstance(value, dict)
    if id(value) in ancestors:
        return "{...}" if is_dict else "[...]"
    if depth >= MAX_DEPTH:
        return f"<{type_name(type(value))} nested deeper than {MAX_DEPTH} levels>"
    ancestors.add(id(value))
    try:
        if isinstance(value, dict):
            return {
                _key_text(key): _walk(item, ancestors, depth + 1)
                for key, item in value.items()
            }
        return [_walk(item, ancestors, depth + 1) for item in value]
    finally:
        ancestors.discard(id(value))


def _key_text(key: object) -> str:
    if isinstance(key, str):
        return _valid_text(key)
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(_json_int(key))
    if isinstance(key, float):
        return repr(float(key))
    converted = _default(key)
    if isinstance(converted, str):
        return _valid_text(converted)
    return _valid_text(safe_repr(key))


def _valid_text(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return str(text)


def _json_int(number: int) -> int | str:
    if _INT_MIN <= number <= _INT_MAX:
        return int(number)
    try:
        return str(number)
    except ValueError:
        # Python refuses to convert ints of more than 4300 digits to text.
        return f"<int of {number.bit_length()} bits>"
