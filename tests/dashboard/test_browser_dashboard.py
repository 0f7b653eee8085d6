"""The dashboard in a real browser: sign in with a second factor, work requests to their answer,
see the charts. Screenshots of the queue, a request and the reports go to tests/artifacts/."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from dsr.models import DataSubjectRequest, Status
from tests.factories import officer_create, request_create
from tests.support.browser import page_open, screenshot
from tests.support.otp import totp_code


def _act(page, summary: str, fields: dict, confirm: str):
    page.locator("summary", has_text=summary).click()
    form = page.locator("details[open] form")
    for label, value in fields.items():
        control = form.get_by_label(label)
        if control.evaluate("e => e.tagName") == "SELECT":
            control.select_option(value)
        else:
            control.fill(value)
    form.get_by_role("button").click()
    page.get_by_role("button", name=confirm).click()
    page.wait_for_url("**/dashboard/requests/**")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_officer_signs_in_with_2fa_and_works_requests(live_server, browser, settings):
    settings.DSR_REQUIRE_2FA = True
    settings.CELERY_TASK_ALWAYS_EAGER = True
    officer_create(username="olivia", email="olivia@company.example")
    work = request_create(email="work@example.org", request_type="access", regime="ccpa")
    refuse = request_create(email="refuse@example.org", request_type="erasure", regime="gdpr")
    for i in range(6):
        request_create(email=f"older{i}@example.org", received_at=timezone.now() - timedelta(days=10 * i))
    page = page_open(browser, "en", "desktop")

    page.goto(live_server.url + "/dashboard/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/accounts/otp/**")
    secret = page.locator("#totp-secret").inner_text()
    assert re.fullmatch(r"[A-Z2-7]+", secret)
    device = TOTPDevice.objects.get(user__username="olivia")
    page.get_by_label("6-digit code from your authenticator app").fill(totp_code(device))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/dashboard/")
    assert page.get_by_role("heading", name="Requests").is_visible()
    screenshot(page, "dashboard-queue-desktop")

    page.get_by_role("link", name=work.reference).click()
    _act(
        page,
        "Extend the deadline",
        {"Reason (the requester will read it)": "Your data is in five systems."},
        "Yes, extend the deadline",
    )
    _act(
        page, "Verify identity", {"Note on the evidence": "Customer number and postcode match."}, "Yes, verify identity"
    )
    _act(page, "Approve and start work", {}, "Yes, approve and start work")
    _act(
        page, "Mark done", {"Message to the requester": "We sent you the categories of data we hold."}, "Yes, mark done"
    )
    assert "Completed" in page.content()
    screenshot(page, "dashboard-request-desktop")
    work.refresh_from_db()
    assert work.status == Status.COMPLETED and work.is_extended
    assert [
        e
        for e in work.events.values_list("event_type", flat=True)
        if e in ("extended", "verified", "approved", "completed")
    ] == ["extended", "verified", "approved", "completed"]

    page.goto(f"{live_server.url}/dashboard/requests/{refuse.reference}/")
    page.locator("summary", has_text="Deny").click()
    form = page.locator("details[open] form")
    form.get_by_label("Reason category").select_option("exempt")
    form.get_by_label("Message to the requester").fill("We must keep this data under a legal hold.")
    form.get_by_role("button").click()
    page.get_by_role("button", name="Yes, deny").wait_for()  # the confirmation page has loaded
    assert "will read your message word for word" in page.content()
    page.get_by_role("button", name="Yes, deny").click()
    page.wait_for_url("**/dashboard/requests/**")
    refuse.refresh_from_db()
    assert refuse.status == Status.DENIED and refuse.denial_reason == "exempt"

    page.get_by_role("link", name="Reports").click()
    assert page.locator("svg[role=img]").count() == 3
    # The §7102 table (CCPA), then one table per other regime, each with a row per group.
    assert page.locator("#metrics-7102 table.metrics tbody tr").count() == 6
    assert page.locator("table.metrics").count() == 3
    screenshot(page, "dashboard-reports-desktop")
    phone = page_open(browser, "en", "phone")
    phone.context.add_cookies(page.context.cookies())
    phone.goto(live_server.url + "/dashboard/")
    screenshot(phone, "dashboard-queue-phone")
    assert DataSubjectRequest.objects.count() == 8
