"""One-line notices on stderr, at most one per kind of failure."""

from __future__ import annotations

import contextlib
import sys
import threading


class StderrNotices:
    """Writes a line to stderr the first time each kind of failure happens.

    The failures it reports (a closed pipe, a value that could not be encoded)
    tend to repeat on every call, so later occurrences of a kind stay silent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()

    def once(self, kind: str, text: str) -> None:
        """Write ``text`` as one line unless a notice of ``kind`` was written."""
        with self._lock:
            if kind in self._seen:
                return
            self._seen.add(kind)
        stream = sys.stderr
        if stream is None:
            return
        # stderr may be the supervisor's pipe, gone with the supervisor; there is
        # nowhere left to report that.
        with contextlib.suppress(OSError, ValueError):
            stream.write(text.replace("\n", " ") + "\n")
            stream.flush()

    def reset(self) -> None:
        """Forget which kinds were reported."""
        with self._lock:
            self._seen.clear()
