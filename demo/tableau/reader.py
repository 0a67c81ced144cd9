"""Open ``.twb`` and ``.twbx`` files safely and return the workbook's XML tree.

Uploads are untrusted. The XML is parsed with defusedxml with DTDs forbidden, so
entity expansion ("billion laughs") and external entities never happen. A
packaged workbook (``.twbx``) is a zip archive, of which only the root-level
``.twb`` member is read. Before that, every member name is checked for path
traversal and the total uncompressed size against a limit. The read itself
stops at the limit too, because an archive's size fields can lie.
"""

from __future__ import annotations

import os
import posixpath
import zipfile
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

from demo.tableau.errors import WorkbookError

#: Largest ``.twb`` document read, in bytes (alone or inside a ``.twbx``).
MAX_WORKBOOK_BYTES = 64 * 1024 * 1024
#: Largest total uncompressed size of a ``.twbx`` archive's members, in bytes.
MAX_ARCHIVE_BYTES = 1024 * 1024 * 1024
#: Most members a ``.twbx`` archive may have.
MAX_ARCHIVE_MEMBERS = 10_000

_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"


def read_workbook(path: str | os.PathLike[str]) -> Element:
    """Return the root ``<workbook>`` element of a ``.twb`` or ``.twbx`` file.

    Raises ``WorkbookError`` naming the file for a missing, empty, oversized,
    malformed or non-Tableau file.
    """
    path = Path(path)
    name = path.name
    data = _read_source(path)
    if data[:4] in (_ZIP_MAGIC, _EMPTY_ZIP_MAGIC):
        data = _read_packaged_twb(path)
    elif path.suffix.lower() == ".twbx":
        raise WorkbookError(
            f"{name!r} is not a valid packaged workbook: a .twbx file must be a "
            "zip archive"
        )
    return _parse_workbook_xml(data, name)


def _read_source(path: Path) -> bytes:
    name = path.name
    try:
        with path.open("rb") as stream:
            head = stream.read(4)
            if not head:
                raise WorkbookError(f"{name!r} is empty: expected a .twb or .twbx file")
            if head in (_ZIP_MAGIC, _EMPTY_ZIP_MAGIC):
                return head
            rest = stream.read(MAX_WORKBOOK_BYTES)
    except FileNotFoundError as exc:
        raise WorkbookError(f"workbook file {str(path)!r} was not found") from exc
    except IsADirectoryError as exc:
        raise WorkbookError(f"{str(path)!r} is a folder, not a workbook file") from exc
    except OSError as exc:
        raise WorkbookError(f"cannot read workbook file {name!r}: {exc}") from exc
    data = head + rest
    if len(data) > MAX_WORKBOOK_BYTES:
        raise WorkbookError(
            f"{name!r} is larger than the {MAX_WORKBOOK_BYTES} bytes allowed for "
            "a workbook"
        )
    return data


def _read_packaged_twb(path: Path) -> bytes:
    name = path.name
    try:
        with zipfile.ZipFile(path) as archive:
            member = _find_twb_member(archive, name)
            return _read_member(archive, member, name)
    except zipfile.BadZipFile as exc:
        raise WorkbookError(f"{name!r} is not a valid zip archive: {exc}") from exc
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        # NotImplementedError: an unsupported compression method;
        # RuntimeError: an encrypted member.
        raise WorkbookError(f"cannot open the archive {name!r}: {exc}") from exc


def _find_twb_member(archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    members = archive.infolist()
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise WorkbookError(
            f"{name!r} has {len(members)} archive members; at most "
            f"{MAX_ARCHIVE_MEMBERS} are allowed"
        )
    for member in members:
        _check_member_name(member.filename, name)
    total = sum(member.file_size for member in members)
    if total > MAX_ARCHIVE_BYTES:
        raise WorkbookError(
            f"{name!r} unpacks to {total} bytes; at most {MAX_ARCHIVE_BYTES} are "
            "allowed"
        )
    workbooks = [
        member
        for member in members
        if not member.is_dir()
        and "/" not in member.filename.strip("/")
        and member.filename.lower().endswith(".twb")
    ]
    if not workbooks:
        raise WorkbookError(
            f"{name!r} contains no .twb workbook at the top level of the archive"
        )
    if len(workbooks) > 1:
        found = sorted(member.filename for member in workbooks)
        raise WorkbookError(
            f"{name!r} contains {len(workbooks)} .twb workbooks ({found!r}); a "
            "packaged workbook has exactly one"
        )
    return workbooks[0]


def _check_member_name(member_name: str, name: str) -> None:
    normalised = member_name.replace("\\", "/")
    parts = normalised.split("/")
    unsafe = (
        normalised.startswith("/")
        or (len(normalised) > 1 and normalised[1] == ":")
        or ".." in parts
        or posixpath.normpath(normalised).startswith("..")
        or "\x00" in normalised
    )
    if unsafe:
        raise WorkbookError(
            f"{name!r} contains the unsafe archive member name {member_name!r}: "
            "absolute paths and '..' are not allowed"
        )


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str) -> bytes:
    if member.file_size > MAX_WORKBOOK_BYTES:
        raise WorkbookError(
            f"the workbook {member.filename!r} in {name!r} is {member.file_size} "
            f"bytes; at most {MAX_WORKBOOK_BYTES} are allowed"
        )
    with archive.open(member) as stream:
        data = stream.read(MAX_WORKBOOK_BYTES + 1)
    if len(data) > MAX_WORKBOOK_BYTES:
        raise WorkbookError(
            f"the workbook {member.filename!r} in {name!r} unpacks to more than "
            f"{MAX_WORKBOOK_BYTES} bytes"
        )
    if not data:
        raise WorkbookError(f"the workbook {member.filename!r} in {name!r} is empty")
    return data


def _parse_workbook_xml(data: bytes, name: str) -> Element:
    try:
        root = safe_et.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise WorkbookError(
            f"{name!r} declares a DTD or entities, which Tableau workbooks never "
            f"do and which are not allowed: {exc}"
        ) from exc
    except ParseError as exc:
        raise WorkbookError(f"{name!r} is not well-formed XML: {exc}") from exc
    if root.tag != "workbook":
        raise WorkbookError(
            f"{name!r} is not a Tableau workbook: its root element is "
            f"<{root.tag}>, expected <workbook>"
        )
    return root
