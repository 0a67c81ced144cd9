"""The browser tests' fixtures: a Daphne serving the demo and a signed-in Chromium."""

from tests.browser.conftest import (  # noqa: F401
    browser_context,
    chromium_executable,
    demo_server,
    dialogs,
    page,
    page_errors,
)
