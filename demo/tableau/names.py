"""Model object names and file names derived from Tableau's names."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FILE_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{prefix}{n}" for prefix in ("COM", "LPT") for n in range(1, 10)
}
MAX_FILE_STEM = 100


def unbracket(name: str) -> str:
    """Return a Tableau field name without its brackets: ``[Sales]`` -> ``Sales``."""
    if name.startswith("[") and name.endswith("]"):
        return name[1:-1].replace("]]", "]")
    return name


def clean_name(name: str, fallback: str) -> str:
    """Return ``name`` usable as a model object name.

    Tabular names may not have control characters or surrounding spaces.
    """
    cleaned = _CONTROL.sub(" ", name).strip()
    return cleaned or fallback


class NameRegistry:
    """Unique names, compared without case as Analysis Services compares them."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name.casefold() in self._taken

    def claim(self, name: str, *others: NameRegistry) -> str:
        """Reserve and return ``name``, or ``name (2)``, ``name (3)`` … if taken."""
        candidate, number = name, 1
        while candidate in self or any(candidate in other for other in others):
            number += 1
            candidate = f"{name} ({number})"
        self._taken.add(candidate.casefold())
        return candidate


def file_stem(name: str, taken: set[str]) -> str:
    """Return a file name stem for a table that is safe on Windows and POSIX.

    Unsafe characters become ``_``; reserved device names, empty names and
    names already in ``taken`` (compared without case) get a suffix.
    """
    stem = unicodedata.normalize("NFC", name)
    stem = _FILE_UNSAFE.sub("_", stem).strip(" .")[:MAX_FILE_STEM] or "table"
    if stem.upper().split(".")[0] in _WINDOWS_RESERVED:
        stem = f"{stem}_"
    candidate, number = stem, 1
    while candidate.casefold() in taken:
        number += 1
        candidate = f"{stem}_{number}"
    taken.add(candidate.casefold())
    return candidate
