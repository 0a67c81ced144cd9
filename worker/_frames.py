"""Encoding of the frames the child writes, within the size limits.

The frame kinds and their fields are described in `worker._spec`.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from typing import Any

import orjson

from worker._jsonsafe import dumps, safe_repr, text_of, type_name
from worker._progress import Progress
from worker._spec import (
    FRAME_CANCELLED,
    FRAME_ERROR,
    FRAME_EXIT,
    FRAME_LOG,
    FRAME_RESULT,
    Limits,
)
from worker._truncate import byte_marker, fit_frame, limit_options

#: Characters kept of a ``message_type``; the supervisor maps unknown ones to info.
MAX_MESSAGE_TYPE_CHARS = 64
#: Characters kept of a ``progress_invalid`` repr and of an error's type name.
MAX_SHORT_TEXT_CHARS = 256
#: Bytes a frame needs besides its texts and options; part of `max_frame_bytes`.
_FRAME_OVERHEAD = 128

_EMPTY_OPTIONS = orjson.Fragment(b"{}")
CANCELLED_FRAME = dumps({"k": FRAME_CANCELLED}, newline=True)


def encode_log(
    message: str,
    progress: Progress,
    progress_invalid: str | None,
    message_type: str,
    options: object,
    limits: Limits,
) -> bytes:
    """Encode one ``log`` frame; ``message`` and ``message_type`` are str."""
    frame: dict[str, Any] = {
        "k": FRAME_LOG,
        "message": message,
        "message_type": message_type,
        "progress": progress,
        "ts": time.time(),
        "options": _encode_options(options, limits.max_options_bytes),
    }
    if progress_invalid is not None:
        frame["progress_invalid"] = progress_invalid
    if (
        len(message) <= limits.max_message_chars
        and len(message_type) <= MAX_MESSAGE_TYPE_CHARS
    ):
        encoded = dumps(frame, newline=True)
        if len(encoded) <= limits.max_frame_bytes:
            return encoded
    max_chars = {
        "message": limits.max_message_chars,
        "message_type": MAX_MESSAGE_TYPE_CHARS,
    }
    return fit_frame(frame, max_chars, limits.max_frame_bytes)


def encode_result(value: object, limits: Limits) -> bytes:
    """Encode the ``result`` frame for the job's return value."""
    encoded = dumps(value)
    budget = limits.max_frame_bytes - _FRAME_OVERHEAD
    if len(encoded) > budget:
        encoded = dumps(byte_marker(len(encoded)))
    return dumps({"k": FRAME_RESULT, "value": orjson.Fragment(encoded)}, newline=True)


def encode_error(exc: BaseException, limits: Limits) -> bytes:
    """Encode the ``error`` frame for an exception that ended the job."""
    frame = {
        "k": FRAME_ERROR,
        "type": type_name(type(exc)),
        "message": text_of(exc),
        "traceback": _traceback_text(exc),
    }
    max_chars = {
        "type": MAX_SHORT_TEXT_CHARS,
        "message": limits.max_message_chars,
        "traceback": limits.max_message_chars,
    }
    return fit_frame(
        frame, max_chars, limits.max_frame_bytes, keep_end=frozenset({"traceback"})
    )


def encode_exit(code: int, message: str | None, limits: Limits) -> bytes:
    """Encode the ``exit`` frame for a ``SystemExit`` that ended the job."""
    frame: dict[str, Any] = {"k": FRAME_EXIT, "code": code, "message": message}
    if message is None:
        return dumps(frame, newline=True)
    max_chars = {"message": limits.max_message_chars}
    return fit_frame(frame, max_chars, limits.max_frame_bytes)


def _encode_options(options: object, max_bytes: int) -> orjson.Fragment:
    if options is None:
        return _EMPTY_OPTIONS
    encoded = dumps(_as_dict(options))
    return orjson.Fragment(limit_options(encoded, max_bytes))


def _as_dict(options: object) -> dict[Any, Any]:
    if isinstance(options, dict):
        return options
    if isinstance(options, Mapping):
        try:
            return dict(options)
        except Exception:
            return {"options": safe_repr(options)}
    return {"options": options}


def _traceback_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)).rstrip("\n")
