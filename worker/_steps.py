"""The step counter behind `increment_progress` and `get_progress`."""

from __future__ import annotations

import threading


class StepCounter:
    """Counts completed steps out of a total and turns them into a percentage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total: int | None = None
        self._done = 0

    def reset(self, total_steps: int | None) -> None:
        """Start counting from zero towards ``total_steps`` (None: no count)."""
        with self._lock:
            self._total = total_steps
            self._done = 0

    def increment(self) -> int | None:
        """Count one more step, up to the total, and return the new percentage."""
        with self._lock:
            if not self._total:
                return None
            self._done = min(self._done + 1, self._total)
            return self._done * 100 // self._total

    def percentage(self) -> int | None:
        """Return completed steps * 100 // total steps, or None without a total."""
        with self._lock:
            if not self._total:
                return None
            return self._done * 100 // self._total
