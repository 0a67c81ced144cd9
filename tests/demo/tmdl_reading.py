"""A small reader for the TMDL the converter writes, so tests can check objects."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

_DECLARATION = re.compile(
    r"^\t(?P<kind>column|measure|partition) (?P<name>'(?:[^']|'')*'|\S+)"
    r"(?: = (?P<expression>.*))?$"
)


@dataclasses.dataclass
class TmdlObject:
    kind: str
    name: str
    expression: str | None
    properties: dict[str, str] = dataclasses.field(default_factory=dict)
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    description: list[str] = dataclasses.field(default_factory=list)

    def annotation_json(self, key: str) -> str:
        return json.loads(self.annotations[key])


@dataclasses.dataclass
class TmdlTable:
    name: str
    objects: list[TmdlObject]

    def find(self, kind: str, name: str) -> TmdlObject:
        for item in self.objects:
            if item.kind == kind and item.name == name:
                return item
        raise AssertionError(f"no {kind} {name!r} in table {self.name!r}")

    def names(self, kind: str, *, calculated: bool | None = None) -> list[str]:
        return [
            item.name
            for item in self.objects
            if item.kind == kind
            and (calculated is None or (item.expression is not None) == calculated)
        ]


def unquote(name: str) -> str:
    if name.startswith("'") and name.endswith("'"):
        return name[1:-1].replace("''", "'")
    return name


def read_table(path: Path) -> TmdlTable:
    """Parse one ``tables/*.tmdl`` file written by the converter."""
    text = path.read_text(encoding="utf-8")
    table_name = ""
    objects: list[TmdlObject] = []
    pending_description: list[str] = []
    current: TmdlObject | None = None
    for line in text.splitlines():
        if line.startswith("table "):
            table_name = unquote(line[len("table ") :])
        elif line.startswith("\t///"):
            pending_description.append(line[len("\t/// ") :])
        elif match := _DECLARATION.match(line):
            current = TmdlObject(
                match["kind"], unquote(match["name"]), match["expression"]
            )
            current.description = pending_description
            pending_description = []
            objects.append(current)
        elif line.startswith("\t\tannotation ") and current is not None:
            key, _, value = line[len("\t\tannotation ") :].partition(" = ")
            current.annotations[key] = value
        elif line.startswith("\t\t") and ": " in line and current is not None:
            key, _, value = line.strip().partition(": ")
            current.properties[key] = value
        elif line.startswith("\t\t") and line.strip() and current is not None:
            current.properties.setdefault(line.strip(), "")
        elif line.startswith("\t") and not line.startswith("\t\t"):
            current = None
    return TmdlTable(table_name, objects)


def read_relationships(path: Path) -> list[dict[str, str]]:
    """Return each relationship's properties from ``relationships.tmdl``."""
    relationships: list[dict[str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("relationship "):
            relationships.append({"name": line.split(" ", 1)[1]})
        elif line.startswith("\t") and ": " in line and relationships:
            key, _, value = line.strip().partition(": ")
            relationships[-1][key] = value
    return relationships
