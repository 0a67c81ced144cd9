"""Cutting messages, options and whole frames down to the size limits."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from worker._jsonsafe import dumps

#: Characters cut beyond the excess in each shrinking step, so that a marker
#: whose count gains a digit cannot leave the line a few bytes too long again.
_MARKER_ROOM = 64
#: Encoded options that still do not fit after every value was replaced.
_NO_OPTIONS = b"{}"


def cut_text(text: str, max_chars: int, *, keep_end: bool = False) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, marker included.

    The marker names how many characters were removed, for example
    ``"… [truncated 1048576 characters]"``, so the kept text is ``max_chars``
    minus the marker's length. A limit shorter than the marker returns the
    marker alone. With ``keep_end`` the end of the text is kept, which is
    where a traceback names the failing line.
    """
    if len(text) <= max_chars:
        return text
    kept = max_chars
    while True:
        removed = len(text) - kept
        room = max_chars - len(char_marker(removed))
        if room < 0:
            return char_marker(len(text))
        if kept <= room:
            break
        # A longer count can lengthen the marker, so check the new count.
        kept = room
    if keep_end:
        return f"[truncated {removed} characters] …{text[removed:]}"
    return f"{text[:kept]}{char_marker(removed)}"


def char_marker(removed: int) -> str:
    """Return the marker that ends a text cut by ``removed`` characters."""
    return f"… [truncated {removed} characters]"


def byte_marker(size: int) -> str:
    """Return the text that replaces a value of ``size`` encoded bytes."""
    return f"… [truncated {size} bytes]"


def limit_options(encoded: bytes, max_bytes: int) -> bytes:
    """Replace option values, largest first, by markers until they fit.

    ``encoded`` is a JSON object. If replacing every value is not enough (many
    keys, or long keys), the whole object becomes ``{"options": marker}``.
    """
    if len(encoded) <= max_bytes:
        return encoded
    options = orjson.loads(encoded)
    sizes = sorted(
        ((len(orjson.dumps(value)), key) for key, value in options.items()),
        reverse=True,
    )
    total = len(encoded)
    for size, key in sizes:
        if total <= max_bytes:
            break
        marker = byte_marker(size)
        options[key] = marker
        total -= size - len(orjson.dumps(marker))
    limited = orjson.dumps(options)
    if len(limited) <= max_bytes:
        return limited
    whole = orjson.dumps({"options": byte_marker(len(encoded))})
    return whole if len(whole) <= max_bytes else _NO_OPTIONS


def fit_frame(
    frame: dict[str, Any],
    max_chars: Mapping[str, int],
    max_bytes: int,
    *,
    keep_end: frozenset[str] = frozenset(),
) -> bytes:
    """Encode ``frame`` as a line of at most ``max_bytes``, cutting its texts.

    Each field named in ``max_chars`` is a string cut to that many characters,
    marker included, first. While the line is still too long (JSON escapes a
    control character as six bytes), the longest of these fields is cut
    further, by the excess divided by its bytes per character. The caller
    bounds every other field, so the loop ends at the latest once the texts
    are only their markers.
    """
    originals = {name: frame[name] for name in max_chars}
    keep = {name: min(len(originals[name]), limit) for name, limit in max_chars.items()}
    while True:
        for name, chars in keep.items():
            frame[name] = cut_text(originals[name], chars, keep_end=name in keep_end)
        encoded = dumps(frame, newline=True)
        excess = len(encoded) - max_bytes
        longest = max(keep, key=keep.__getitem__)
        if excess <= 0 or keep[longest] == 0:
            return encoded
        text = frame[longest]
        bytes_per_char = max(1.0, len(dumps(text)) / max(1, len(text)))
        cut = math.ceil((excess + _MARKER_ROOM) / bytes_per_char)
        keep[longest] = max(0, keep[longest] - cut)
