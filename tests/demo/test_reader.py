"""Opening workbooks: .twb, .twbx, and every kind of bad or hostile file."""

from __future__ import annotations

import zipfile

import pytest

from demo.tableau import reader
from demo.tableau.errors import WorkbookError
from demo.tableau.reader import read_workbook

MINIMAL = (
    b"<?xml version='1.0' encoding='utf-8' ?>"
    b"<workbook version='18.1'><datasources/></workbook>"
)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE workbook [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<workbook>&lol4;</workbook>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE workbook [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<workbook>&secret;</workbook>
"""


def make_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_read_twb(sample_path):
    root = read_workbook(sample_path)
    assert root.tag == "workbook"
    assert root.find("datasources") is not None


def test_read_twbx_with_data_files(tmp_path, sample_path):
    packaged = make_zip(
        tmp_path / "small-sales.twbx",
        {
            "small-sales.twb": sample_path.read_bytes(),
            "Data/small-sales.xlsx": b"not really a spreadsheet",
        },
    )
    root = read_workbook(packaged)
    assert root.tag == "workbook"
    assert len(root.findall("datasources/datasource")) == 2


def test_twbx_detected_by_content(tmp_path):
    disguised = make_zip(tmp_path / "renamed.twb", {"inner.twb": MINIMAL})
    assert read_workbook(disguised).tag == "workbook"


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("empty.twb", b"", "'empty.twb' is empty"),
        ("text.twb", b"this is not xml", "'text.twb' is not well-formed XML"),
        ("truncated.twb", MINIMAL[:60], "'truncated.twb' is not well-formed XML"),
        (
            "report.twb",
            b"<?xml version='1.0'?><report/>",
            "its root element is <report>, expected <workbook>",
        ),
        ("laughs.twb", BILLION_LAUGHS, "'laughs.twb' declares a DTD or entities"),
        ("external.twb", EXTERNAL_ENTITY, "'external.twb' declares a DTD or entities"),
        (
            "broken.twbx",
            b"PK\x03\x04 this is no zip archive at all",
            "'broken.twbx' is not a valid zip archive",
        ),
        ("plain.twbx", MINIMAL, "a .twbx file must be a zip archive"),
    ],
)
def test_bad_file_rejected(tmp_path, name, data, expected):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(WorkbookError) as excinfo:
        read_workbook(path)
    assert expected in str(excinfo.value)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(WorkbookError, match="was not found"):
        read_workbook(tmp_path / "absent.twb")


def test_folder_rejected(tmp_path):
    with pytest.raises(WorkbookError, match="is a folder"):
        read_workbook(tmp_path)


def test_zip_without_twb_rejected(tmp_path):
    packaged = make_zip(tmp_path / "data-only.twbx", {"Data/extract.hyper": b"x"})
    with pytest.raises(WorkbookError, match=r"contains no \.twb workbook"):
        read_workbook(packaged)


def test_nested_twb_not_taken(tmp_path):
    packaged = make_zip(tmp_path / "nested.twbx", {"folder/inner.twb": MINIMAL})
    with pytest.raises(WorkbookError, match="at the top level"):
        read_workbook(packaged)


def test_two_twb_rejected(tmp_path):
    packaged = make_zip(tmp_path / "two.twbx", {"a.twb": MINIMAL, "b.twb": MINIMAL})
    with pytest.raises(WorkbookError, match=r"contains 2 \.twb workbooks"):
        read_workbook(packaged)


@pytest.mark.parametrize(
    "member", ["../evil.twb", "Data/../../evil.txt", "/etc/evil.twb", "C:/evil.twb"]
)
def test_zip_path_traversal_rejected(tmp_path, member):
    packaged = make_zip(tmp_path / "evil.twbx", {"ok.twb": MINIMAL, member: b"x"})
    with pytest.raises(WorkbookError) as excinfo:
        read_workbook(packaged)
    assert "unsafe archive member name" in str(excinfo.value)
    assert repr(member) in str(excinfo.value)


def test_zip_uncompressed_size_limited(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "MAX_ARCHIVE_BYTES", 10_000)
    packaged = make_zip(
        tmp_path / "bomb.twbx", {"ok.twb": MINIMAL, "Data/zeros.bin": bytes(20_000)}
    )
    with pytest.raises(WorkbookError, match="unpacks to 20"):
        read_workbook(packaged)


def test_packaged_twb_size_limited(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "MAX_WORKBOOK_BYTES", 1_000)
    padded = MINIMAL.replace(b"<datasources/>", b"<datasources/>" + b" " * 5_000)
    packaged = make_zip(tmp_path / "big.twbx", {"big.twb": padded})
    with pytest.raises(WorkbookError, match="at most 1000 are allowed"):
        read_workbook(packaged)


def test_twb_size_limited(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "MAX_WORKBOOK_BYTES", 1_000)
    path = tmp_path / "big.twb"
    path.write_bytes(MINIMAL + b" " * 5_000)
    with pytest.raises(WorkbookError, match="larger than the 1000 bytes"):
        read_workbook(path)
