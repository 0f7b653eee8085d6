"""The access package in a real browser: the officer approves a verified request, sees the search
and its package on the request page and sends the answer; the requester asks for a code on their
status page, types it and downloads the ZIP — all without JavaScript being needed."""

import io
import json
import re
import zipfile

import pytest
from django.core import mail

from dsr.fulfilment.models import AccessPackage
from tests.factories import officer_create
from tests.fulfilment import packaging
from tests.fulfilment.conftest import verified_request
from tests.support.browser import page_open, screenshot, staff_page_signed_in

package_systems = packaging.package_systems  # the fixture


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_officer_answers_and_the_requester_downloads_the_package(live_server, browser, settings, package_systems):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.SITE_URL = live_server.url
    officer = officer_create(username="olivia", email="olivia@company.example")
    req = verified_request(officer=officer)

    staff = staff_page_signed_in(browser, live_server, f"/dashboard/requests/{req.reference}/")
    staff.locator("summary", has_text="Approve and start work").click()
    staff.locator("details[open] form").get_by_role("button").click()
    staff.get_by_role("button", name="Yes, approve and start work").click()
    staff.wait_for_url("**/dashboard/requests/**")
    panel = staff.locator("#fulfilment")
    assert "Systems answered: 3 of 3" in panel.inner_text() and "Access package" in panel.inner_text()
    staff.get_by_role("button", name="Send the answer (complete the request)").click()
    staff.wait_for_url("**/dashboard/requests/**")
    screenshot(staff, "package-staff-desktop")

    page = page_open(browser, "en", "phone")
    page.goto(f"{live_server.url}/r/{req.public_token}/")
    assert "A copy of your personal data is ready to download" in page.content()
    page.get_by_role("button", name="Email me a download code").click()
    page.wait_for_url(f"**/r/{req.public_token}/**")
    message = [m for m in mail.outbox if m.to == [req.email] and "download code" in m.subject][-1]
    code = re.search(r"^(\d{6})$", message.body, re.M).group(1)
    page.get_by_label("The 6-digit code from our email").fill(code)
    page.get_by_role("button", name="Open the download").click()
    page.wait_for_url(f"**/r/{req.public_token}/**")
    screenshot(page, "package-requester-phone")
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Download my data")).click()
    data = open(download.value.path(), "rb").read()
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert json.loads(archive.read("manifest.json"))["reference"] == req.reference
    assert AccessPackage.objects.get(request=req).downloads == 1
