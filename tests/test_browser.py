"""The public form in a real browser: Debian's Chromium driven by Playwright."""

import os
import shutil
from pathlib import Path

import pytest

from dsr.models import DataSubjectRequest

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls in these tests are
    # made between browser steps, never concurrently with them.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    executable = os.environ.get("DSR_CHROMIUM") or shutil.which("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 390, "height": 844})
        yield context.new_page()
        # ORM calls made while Playwright's loop runs get a connection of their own; close it
        # here, in the same context, so no session outlives the test database.
        from django.db import connections

        connections.close_all()
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_submit_the_form_in_a_browser(live_server, page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(live_server.url + "/")
    page.get_by_label("Delete my data").check()
    page.get_by_label("California (CCPA)").check()
    page.get_by_label("Your email address", exact=True).fill("browser@example.org")
    page.get_by_label("Your full name", exact=True).fill("Bea Browser")
    page.screenshot(path=str(ARTIFACTS / "form-phone.png"), full_page=True)
    page.get_by_role("button", name="Send my request").click()
    page.wait_for_url("**/submitted/")
    r = DataSubjectRequest.objects.get(email="browser@example.org")
    assert "What happens next" in page.content()
    assert r.request_type == "erasure" and r.regime == "ccpa"
    page.screenshot(path=str(ARTIFACTS / "submitted-phone.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_form_errors_in_a_browser(live_server, page):
    page.goto(live_server.url + "/")
    page.get_by_label("Your email address", exact=True).fill("not-an-email")
    page.get_by_label("Your full name", exact=True).fill("Kept")
    page.get_by_role("button", name="Send my request").click()
    assert page.get_by_role("alert").is_visible()
    assert page.get_by_label("Your full name", exact=True).input_value() == "Kept"
    assert DataSubjectRequest.objects.count() == 0
