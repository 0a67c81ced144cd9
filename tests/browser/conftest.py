"""Fixtures of the browser tests: the demo server, a signed-in Chromium, its pages.

The server and the browser live for the whole module because starting them takes
a few seconds. Every test opens pages of its own and starts tasks with ids of its
own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    expect,
    sync_playwright,
)

from tests.browser.server import DemoServer
from tests.services import require_chromium

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Milliseconds Playwright waits for an element, a navigation or an ``expect``.
#: The value is generous because other test runs may load the machine.
PAGE_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def chromium_executable() -> str:
    return require_chromium()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """A Daphne serving the demo on SQLite in a temporary folder, with a superuser."""
    server = DemoServer(
        tmp_path_factory.mktemp("demo-server"),
        username="browser-admin",
        password=secrets.token_urlsafe(16),
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser_context(
    chromium_executable: str,
    demo_server: DemoServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BrowserContext]:
    """A Chromium with a fresh profile, signed in through the demo's login page."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_executable,
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
        )
        try:
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            expect.set_options(timeout=PAGE_TIMEOUT_MS)
            sign_in(context, demo_server)
            yield context
        finally:
            context.close()


def sign_in(context: BrowserContext, server: DemoServer) -> None:
    """Sign in as the server's superuser on the login page the demo redirects to."""
    page = context.new_page()
    page.goto(server.base_url + "/")
    if "/accounts/login/" not in page.url:
        raise AssertionError(f"the demo page did not ask to sign in: {page.url}")
    page.fill("#id_username", server.username)
    page.fill("#id_password", server.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.base_url + "/")
    signed_in_as = page.locator(".site-user").text_content()
    if signed_in_as != server.username:
        raise AssertionError(f"signed in as {signed_in_as!r}, not {server.username!r}")
    page.close()


@pytest.fixture
def dialogs() -> list[str]:
    """Messages of the alert, confirm and prompt dialogs the page opened."""
    return []


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught exceptions of the page's scripts and errors in its console."""
    return []


@pytest.fixture
def page(
    browser_context: BrowserContext, dialogs: list[str], page_errors: list[str]
) -> Iterator[Page]:
    page = browser_context.new_page()

    def record_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    def record_console_error(message: ConsoleMessage) -> None:
        # The pages link no icon, so Chromium's request for one fails harmlessly.
        if message.type == "error" and "favicon.ico" not in message.location["url"]:
            page_errors.append(f"console: {message.text} at {message.location}")

    page.on("dialog", record_dialog)
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.on("console", record_console_error)
    try:
        yield page
    finally:
        page.close()
