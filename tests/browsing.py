"""Chromium driven by Playwright, for the tests of pages: the browser and page fixtures (a
plugin of conftest.py), logging in, screenshots and the accessibility audit.

Screenshots go to TWOI2C_SCREENSHOTS, else build/screenshots; the run's summary says where.
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# a phone's viewport (an iPhone 12-15's CSS pixels)
PHONE = {"width": 390, "height": 844}


def screenshots_dir() -> Path:
    directory = Path(os.environ.get("TWOI2C_SCREENSHOTS") or Path(__file__).parents[1] / "build" / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context()
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    yield page
    page.screenshot(path=str(tmp_path / "last-page.png"), full_page=True)
    context.close()


def log_in(page, hub_url, username, password):
    page.goto(f"{hub_url}/hub/login")
    page.fill("#username_input", username)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(f"{hub_url}/hub/**")


def screenshot(page, name):
    """The whole page, as `name`.png in the screenshots folder."""
    page.screenshot(path=str(screenshots_dir() / f"{name}.png"), full_page=True)


def pytest_terminal_summary(terminalreporter):
    directory = screenshots_dir()
    if any(directory.glob("*.png")):
        terminalreporter.write_line(f"Screenshots of the pages: {directory}")


def audit(page, name):
    """No serious or critical axe-core violation on the page as it is now; then its
    screenshot, as `name`.png."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}: "
        + v["nodes"][0]["failureSummary"]
        for v in bad
    )
    screenshot(page, name)
