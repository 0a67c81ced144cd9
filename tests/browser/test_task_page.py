"""The task page in a real Chromium, against the demo served by a real Daphne.

Each test compares what the page shows with the rows the database saver stored:
the same messages, in seq order, each once, live and after a reload.
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.browser import jobs
from tests.browser.server import REPOSITORY, DemoServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REAL_WORKBOOKS = REPOSITORY.parent / "shared" / "data" / "workbooks"
BIG_WORKBOOK = REAL_WORKBOOKS / "data-load-analysis.twb"
#: Seconds a task may take to end and its last line to reach the page.
END_TIMEOUT = 60.0
END_TIMEOUT_MS = int(END_TIMEOUT * 1000)
#: Seconds the demo job pauses after each step, so the conversion of the big
#: workbook (about 90 lines) lasts several seconds and a reload lands mid-run. The
#: form accepts multiples of 0.1 only.
STEP_DELAY = "0.1"

#: (seq, event, text) of one log line.
Line = tuple[int, str, str]

#: Records img, svg and script elements that carry the hostile text, or that were
#: added once the HTML was parsed, when only the page script adds elements. The
#: page's own scripts are left out, and an element is recorded even when it is
#: removed again later.
MARKUP_RECORDER = """
window.createdMarkup = [];
const hostileMarkers = ["alert(", "<script>x</script>"];
new MutationObserver(function (records) {
  const parsed = document.readyState !== "loading";
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (node.nodeType !== Node.ELEMENT_NODE) continue;
      for (const element of [node, ...node.querySelectorAll("*")]) {
        const tag = element.localName;
        if (tag !== "img" && tag !== "svg" && tag !== "script") continue;
        const ownScript = element.id === "migration-config" ||
          (element.src || "").endsWith("/django_integration/migration.js");
        const html = element.outerHTML;
        const hostile = hostileMarkers.some(marker => html.includes(marker));
        if (!ownScript && (parsed || hostile)) {
          window.createdMarkup.push(html);
        }
      }
    }
  }
}).observe(document, { childList: true, subtree: true });
"""

READ_LINES = """
lines => lines.map(line => ({
  seq: line.dataset.seq,
  event: line.dataset.event,
  type: line.dataset.type,
  className: line.className,
  text: line.querySelector(".log-text").textContent,
  options: line.querySelector(".log-options")?.textContent ?? null,
}))
"""


# Starting tasks and reading what the page and the database hold.


def start_job(
    context: BrowserContext, server: DemoServer, target: str, *args: object
) -> str:
    """Start ``target`` through the app's start view and return the task id."""
    token = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    response = context.request.post(
        server.base_url + "/migrations/start/",
        data=json.dumps({"target": target, "args": list(args)}),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-CSRFToken": token,
        },
    )
    assert response.status == 202, response.text()
    return str(response.json()["task_id"])


def task_url(server: DemoServer, task_id: str) -> str:
    return f"{server.base_url}/migrations/tasks/{task_id}/"


def read_lines(page: Page) -> list[dict[str, str | None]]:
    return page.eval_on_selector_all("#log > li", READ_LINES)


def shown_lines(page: Page) -> list[Line]:
    return [
        (int(line["seq"] or 0), str(line["event"]), str(line["text"]))
        for line in read_lines(page)
    ]


def stored_lines(server: DemoServer, task_id: str) -> list[Line]:
    rows = server.query(
        "SELECT seq, event, message FROM django_integration_migrationlog "
        "WHERE task_id = ? ORDER BY seq",
        task_id,
    )
    return [(int(seq), str(event), str(message)) for seq, event, message in rows]


def wait_for_matching_lines(
    page: Page, server: DemoServer, task_id: str, *, until_finished: bool = True
) -> list[Line]:
    """Wait until the page shows exactly the stored lines, and return them.

    With ``until_finished`` the stored stream must also end with ``finished``.
    """
    deadline = time.monotonic() + END_TIMEOUT
    while True:
        stored = stored_lines(server, task_id)
        shown = shown_lines(page)
        finished = bool(stored) and stored[-1][1] == "finished"
        if shown == stored and (finished or not until_finished):
            return shown
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert shown == stored
    assert finished, f"task {task_id} has no stored finished message"
    return shown


def assert_each_seq_once(lines: list[Line]) -> None:
    seqs = [seq for seq, _, _ in lines]
    assert seqs == list(range(1, len(lines) + 1))
    assert lines[0][1] == "started"


def server_errors(server: DemoServer, since: int) -> list[str]:
    """Return the server's log lines from offset ``since`` that report errors."""
    return [
        line
        for line in server.log()[since:].splitlines()
        if "Traceback" in line or " ERROR " in line or " CRITICAL " in line
    ]


def log_line(page: Page, text: str) -> Locator:
    return page.locator("#log .log-text").filter(has_text=text)


# Tests.


def test_workbook_conversion_shows_every_line_once(
    page: Page, demo_server: DemoServer, tmp_path: Path, page_errors: list[str]
) -> None:
    if not BIG_WORKBOOK.is_file():
        pytest.skip(f"the real workbook {BIG_WORKBOOK.name} is not in {REAL_WORKBOOKS}")
    log_start = len(demo_server.log())

    page.goto(demo_server.base_url + "/")
    page.set_input_files("input[name=workbook]", BIG_WORKBOOK)
    page.fill("input[name=step_delay]", STEP_DELAY)
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/migrations/tasks/[A-Za-z0-9_-]+/$"))
    task_id = str(page.locator("#task-id").text_content())

    # Reload once the first lines are shown, most likely while the job runs.
    expect(page.locator("#log > li").nth(10)).to_be_attached()
    page.reload()
    expect(page.locator("#state")).to_have_attribute(
        "data-state", "succeeded", timeout=END_TIMEOUT_MS
    )
    lines = wait_for_matching_lines(page, demo_server, task_id)
    assert_each_seq_once(lines)
    texts = [text for _, _, text in lines]
    assert f"Opening workbook {BIG_WORKBOOK.name}" in texts
    assert texts[-2].startswith(f"Converted {BIG_WORKBOOK.name}: ")
    assert demo_server.task_state(task_id) == "succeeded"
    status = page.request.get(task_url(demo_server, task_id) + "status/").json()
    assert status["state"] == "succeeded"
    assert status["progress"] == 100
    assert status["message_count"] == len(lines)

    progress = page.locator("#progress")
    expect(progress).to_have_attribute("aria-valuenow", "100")
    expect(progress.locator(".progress-label")).to_have_text("100%")
    # The bar's width is animated; wait until it fills its track.
    page.wait_for_function(
        "() => { const bar = document.querySelector('#progress .progress-bar');"
        " return bar.getBoundingClientRect().width"
        " >= bar.parentElement.clientWidth - 1; }"
    )
    page.screenshot(path=tmp_path / "task-page.png", full_page=True)

    page.goto(demo_server.base_url + "/")
    row = page.get_by_role("row").filter(has_text=task_id)
    with page.expect_download() as download_info:
        row.get_by_role("link", name=re.compile(r"^Download\b")).click()
    archive_path = tmp_path / "tmdl.zip"
    download_info.value.save_as(archive_path)
    with zipfile.ZipFile(archive_path) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
    assert any(name.endswith(".tmdl") for name in names), names

    assert page_errors == []
    assert server_errors(demo_server, log_start) == []


def test_reload_mid_run_shows_every_line_once(
    page: Page,
    browser_context: BrowserContext,
    demo_server: DemoServer,
    tmp_path: Path,
    page_errors: list[str],
) -> None:
    log_start = len(demo_server.log())
    first_gate, second_gate = tmp_path / "gate-1", tmp_path / "gate-2"
    lines_per_phase = 60
    task_id = start_job(
        browser_context,
        demo_server,
        "tests.browser.jobs:log_in_phases",
        [str(first_gate), str(second_gate)],
        lines_per_phase,
        0.02,
    )
    page.goto(task_url(demo_server, task_id))
    state = page.locator("#state")

    # The job waits at the first gate, so this reload is certainly mid-run.
    expect(log_line(page, "waiting for gate-1")).to_have_count(1)
    page.reload()
    expect(log_line(page, "waiting for gate-1")).to_have_count(1)
    expect(state).to_have_attribute("data-state", "running")
    expect(page.locator("#progress")).to_have_attribute(
        "aria-valuenow", str(100 * lines_per_phase // (3 * lines_per_phase))
    )
    wait_for_matching_lines(page, demo_server, task_id, until_finished=False)

    # This reload most likely lands while the second phase is logging.
    first_gate.touch()
    expect(log_line(page, f"line {lines_per_phase + 1} of")).to_have_count(1)
    page.reload()
    expect(log_line(page, "waiting for gate-2")).to_have_count(1)
    expect(state).to_have_attribute("data-state", "running")
    page.reload()
    second_gate.touch()

    expect(state).to_have_attribute("data-state", "succeeded", timeout=END_TIMEOUT_MS)
    lines = wait_for_matching_lines(page, demo_server, task_id)
    assert_each_seq_once(lines)
    job_lines = [text for _, event, text in lines if event == "log"]
    assert len(job_lines) == 3 * lines_per_phase + 2
    expect(page.locator("#progress")).to_have_attribute("aria-valuenow", "100")
    assert page_errors == []
    assert server_errors(demo_server, log_start) == []


def test_cancel_button_ends_task_cancelled(
    page: Page,
    browser_context: BrowserContext,
    demo_server: DemoServer,
    tmp_path: Path,
    page_errors: list[str],
) -> None:
    log_start = len(demo_server.log())
    task_id = start_job(
        browser_context,
        demo_server,
        "tests.browser.jobs:log_until_cancelled",
        str(tmp_path / "gate-never-opened"),
    )
    page.goto(task_url(demo_server, task_id))
    state = page.locator("#state")
    expect(log_line(page, "working until cancelled")).to_have_count(1)
    expect(state).to_have_attribute("data-state", "running")

    cancel = page.get_by_role("button", name="Cancel")
    cancel.click()

    expect(state).to_have_attribute("data-state", "cancelled", timeout=END_TIMEOUT_MS)
    expect(page.locator("#outcome")).to_be_visible()
    expect(page.locator("#outcome-state")).to_have_text("cancelled")
    # An ended task offers no Cancel: the button is disabled and hidden.
    expect(page.locator("#cancel")).to_be_disabled()
    expect(page.locator("#cancel")).to_be_hidden()
    lines = wait_for_matching_lines(page, demo_server, task_id)
    assert_each_seq_once(lines)
    job_lines = [text for _, event, text in lines if event == "log"]
    assert job_lines == ["working until cancelled", "cancel received, cleaning up"]
    assert demo_server.task_state(task_id) == "cancelled"
    page.screenshot(path=tmp_path / "task-page.png", full_page=True)
    assert page_errors == []
    assert server_errors(demo_server, log_start) == []


def assert_hostile_text_inert(page: Page, dialogs: list[str]) -> None:
    """Check the hostile line shows as text and created no element or dialog."""
    lines = read_lines(page)
    hostile = [line for line in lines if line["text"] == jobs.HOSTILE_MESSAGE]
    assert len(hostile) == 1, lines
    assert hostile[0]["type"] == "info"
    assert "log-info" in str(hostile[0]["className"]).split()
    assert json.loads(str(hostile[0]["options"])) == {"f": jobs.HOSTILE_OPTION}

    warnings = [
        line
        for line in lines
        if line["type"] == "warning" and jobs.HOSTILE_TYPE in str(line["text"])
    ]
    assert len(warnings) == 1, lines

    assert page.locator("#log img, #log svg, #log script").count() == 0
    assert page.evaluate("window.createdMarkup") == []
    assert dialogs == []


def test_hostile_text_shows_literally(
    page: Page,
    browser_context: BrowserContext,
    demo_server: DemoServer,
    tmp_path: Path,
    dialogs: list[str],
    page_errors: list[str],
) -> None:
    log_start = len(demo_server.log())
    page.add_init_script(MARKUP_RECORDER)
    gate = tmp_path / "gate"
    task_id = start_job(
        browser_context, demo_server, "tests.browser.jobs:log_hostile_text", str(gate)
    )

    # The job logs the markup only once the page is connected, so it arrives live.
    page.goto(task_url(demo_server, task_id))
    expect(log_line(page, "waiting for gate")).to_have_count(1)
    gate.touch()
    expect(page.locator("#state")).to_have_attribute(
        "data-state", "succeeded", timeout=END_TIMEOUT_MS
    )
    expect(log_line(page, "after the hostile line")).to_have_count(1)
    assert_hostile_text_inert(page, dialogs)
    wait_for_matching_lines(page, demo_server, task_id)

    # After a reload the page is rebuilt from the stored rows alone.
    page.reload()
    expect(page.locator("#state")).to_have_attribute("data-state", "succeeded")
    expect(log_line(page, "after the hostile line")).to_have_count(1)
    assert_hostile_text_inert(page, dialogs)
    lines = wait_for_matching_lines(page, demo_server, task_id)
    assert_each_seq_once(lines)
    page.screenshot(path=tmp_path / "task-page.png", full_page=True)
    assert page_errors == []
    assert server_errors(demo_server, log_start) == []
