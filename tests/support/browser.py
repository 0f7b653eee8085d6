"""Debian's Chromium driven by Playwright (never a browser Playwright downloads): the `browser`
fixture in tests/conftest.py launches it; pages per language and viewport; screenshots go to
tests/artifacts/ (not committed)."""

import os
import shutil

from tests.support import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}


def chromium_executable() -> str | None:
    return os.environ.get("DSR_CHROMIUM") or shutil.which("chromium")


def page_open(browser, language: str, viewport: str):
    """A new page in a context of its own, with the browser's language and a phone or desktop size."""
    context = browser.new_context(
        viewport=VIEWPORTS[viewport], locale=language, extra_http_headers={"Accept-Language": language}
    )
    return context.new_page()


def screenshot(page, name: str):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def staff_page_signed_in(
    browser, live_server, path: str, *, username: str = "olivia", password: str = "correct horse battery"
):
    """A desktop page signed in as `username` (no second factor: the test settings' default) and
    landed on `path`, where the sign-in form sent it."""
    page = page_open(browser, "en", "desktop")
    page.goto(live_server.url + path)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{path}")
    return page
