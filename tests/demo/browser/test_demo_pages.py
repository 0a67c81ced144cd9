"""The demo's additions to the task page, in Chromium: navigation and download."""

from __future__ import annotations

import re
import zipfile

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_download_appears_when_succeeded(page: Page, demo_server, tmp_path):
    page.goto(demo_server.base_url + "/")
    page.get_by_label("Use the sample workbook").check()
    page.fill("input[name=step_delay]", "0.1")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/migrations/tasks/[A-Za-z0-9_-]+/$"))

    nav = page.get_by_role("navigation", name="Site")
    expect(nav.get_by_role("link", name="Convert a workbook")).to_have_attribute(
        "href", "/"
    )
    expect(nav.get_by_role("link", name="All tasks")).to_have_attribute(
        "href", "/migrations/"
    )
    expect(page.locator("#state")).to_have_attribute(
        "data-state", "succeeded", timeout=60_000
    )
    download = page.locator("#download")
    expect(download).to_be_visible()
    expect(download.locator("code")).to_have_text("small-sales.twb")

    # The link follows the state the live view writes into #state.
    set_state = "state => { document.getElementById('state').dataset.state = state; }"
    page.evaluate(set_state, "running")
    expect(download).to_be_hidden()
    page.evaluate(set_state, "succeeded")
    expect(download).to_be_visible()

    with page.expect_download() as download_info:
        download.get_by_role("link", name=re.compile(r"^Download\b")).click()
    archive_path = tmp_path / "model.zip"
    download_info.value.save_as(archive_path)
    with zipfile.ZipFile(archive_path) as archive:
        names = set(archive.namelist())
    assert "small-sales.SemanticModel/definition.pbism" in names
    assert "small-sales.SemanticModel/definition/model.tmdl" in names


def test_failed_upload_shows_error_box(page: Page, demo_server, tmp_path):
    notes = tmp_path / "notes.twb"
    notes.write_text("meeting notes")
    page.goto(demo_server.base_url + "/")
    page.set_input_files("input[name=workbook]", notes)
    page.get_by_role("button", name="Start").click()

    # The rejected upload comes back as the same page, with a 400 status.
    page.wait_for_url(demo_server.base_url + "/start/")
    expect(page.get_by_role("alert")).to_contain_text("'notes.twb' is not well-formed")
    expect(page.get_by_role("button", name="Start")).to_be_visible()
