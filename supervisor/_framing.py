"""Splitting what a child writes into newline-terminated lines."""

from __future__ import annotations

__all__ = ["LineSplitter"]


class LineSplitter:
    """Split a byte stream on ``b"\\n"``, keeping the partial last line per pipe.

    A line longer than ``max_line_bytes`` is discarded whole (up to its next
    newline, however many reads that takes) and counted, so a child that writes
    garbage without newlines cannot make the reader buffer without bound.
    """

    def __init__(self, max_line_bytes: int) -> None:
        self._max_line_bytes = max_line_bytes
        self._tail = b""
        self._discarding = False

    def feed(self, chunk: bytes) -> tuple[list[bytes], int]:
        """Return the lines ``chunk`` completes and how many were discarded."""
        discarded = 0
        if self._discarding:
            newline = chunk.find(b"\n")
            if newline < 0:
                return [], 0
            chunk = chunk[newline + 1 :]
            self._discarding = False

        lines = (self._tail + chunk).split(b"\n") if self._tail else chunk.split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > self._max_line_bytes:
            self._tail = b""
            self._discarding = True
            discarded += 1

        if any(len(line) > self._max_line_bytes for line in lines):
            kept = [line for line in lines if len(line) <= self._max_line_bytes]
            discarded += len(lines) - len(kept)
            lines = kept
        return lines, discarded

    def finish(self) -> bytes:
        """Return the unterminated rest at end of file, and forget it."""
        tail, self._tail = self._tail, b""
        self._discarding = False
        return tail
