"""One-line notices on stderr."""

from __future__ import annotations

import pytest

from worker._stderr import StderrNotices

pytestmark = pytest.mark.timeout(30)


def test_each_kind_is_written_once(capsys: pytest.CaptureFixture[str]) -> None:
    notices = StderrNotices()

    notices.once("closed", "pipe closed")
    notices.once("closed", "pipe closed again")
    notices.once("encode", "could not encode\nthe value")

    assert capsys.readouterr().err == "pipe closed\ncould not encode the value\n"


def test_reset_allows_kind_again(capsys: pytest.CaptureFixture[str]) -> None:
    notices = StderrNotices()
    notices.once("closed", "first")

    notices.reset()
    notices.once("closed", "second")

    assert capsys.readouterr().err == "first\nsecond\n"


def test_closed_stderr_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    class ClosedStream:
        def write(self, text: str) -> int:
            raise ValueError("I/O operation on closed file")

        def flush(self) -> None:
            raise ValueError("I/O operation on closed file")

    monkeypatch.setattr("sys.stderr", ClosedStream())

    StderrNotices().once("closed", "nowhere to go")
