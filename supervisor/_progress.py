"""The progress rules: what sinks see is an int from 0 to 100 that never falls."""

from __future__ import annotations

import math

__all__ = ["ProgressTracker", "describe_invalid"]


def describe_invalid(value_repr: str) -> str:
    """Return the warning for a progress value that is not a number."""
    return (
        f"ignored progress value {value_repr}: progress must be a number from 0 to 100"
    )


class ProgressTracker:
    """Apply the progress rules to one task's reported values, in order."""

    def __init__(self) -> None:
        #: Latest progress sinks have seen, or None before the first value.
        self.value: int | None = None

    def apply(self, raw: object) -> tuple[int | None, str | None]:
        """Return the progress to send for ``raw`` and a warning, if any.

        None stays None. Booleans, strings and NaN are ignored with a warning.
        Numbers are clamped to 0..100 (with a warning when out of range),
        floored to an int, and held at the previous value if lower.
        """
        if raw is None:
            return None, None
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return None, describe_invalid(repr(raw))
        if isinstance(raw, float) and math.isnan(raw):
            return None, describe_invalid(repr(raw))

        warning = None
        if raw < 0 or raw > 100:
            clamped = 0 if raw < 0 else 100
            warning = (
                f"progress value {raw!r} is out of range: clamped to {clamped}; "
                "progress must be a number from 0 to 100"
            )
            raw = clamped
        progress = math.floor(raw)
        if self.value is not None and progress < self.value:
            progress = self.value
        self.value = progress
        return progress, warning

    def final(self, succeeded: bool) -> int | None:
        """Return the task's final progress: 100 on success, else the last value."""
        if succeeded:
            self.value = 100
        return self.value
