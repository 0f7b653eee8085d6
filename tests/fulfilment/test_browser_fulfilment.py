"""Fulfilment in a real browser, with the real connectors: the officer approves a verified request
to know, watches the search on the request page (the demo shop's SQLite database is searched at
once; a spreadsheet waits for its owner), the owner answers from the emailed task link with a CSV
export, the officer's open page follows by itself to the package, the officer sends the answer, and
the requester downloads the package from their status page with an emailed code."""

import io
import json
import re
import textwrap
import zipfile

import pytest
from django.core import mail

from dsr.fulfilment.connectors.sql import engines_dispose
from dsr.fulfilment.demo_shop import demo_shop_create, shop_engine
from dsr.fulfilment.models import AccessPackage
from tests.factories import officer_create
from tests.fulfilment.conftest import verified_request
from tests.support.browser import page_open, screenshot, staff_page_signed_in

EMAIL = "katherine.johnson@demo.example"


@pytest.fixture
def demo_systems(settings, tmp_path, monkeypatch):
    """The shipped map's demo shop (a SQLite file made as `make run` makes it) and its manual
    spreadsheet; the http processor is tested on its own (tests/fulfilment/test_http_connector.py)."""
    dsn = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    engine = shop_engine(dsn)
    demo_shop_create(engine)
    engine.dispose()
    monkeypatch.setenv("BROWSER_SHOP_DSN", dsn)
    import yaml

    shipped = yaml.safe_load((settings.BASE_DIR / "config" / "datamap.yaml").read_text())
    systems = [s for s in shipped["systems"] if s["name"] in ("shop", "crm_spreadsheet")]
    systems[0]["connection"]["dsn_env"] = "BROWSER_SHOP_DSN"
    path = tmp_path / "datamap.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "systems": systems}, sort_keys=False))
    settings.DSR_DATAMAP = str(path)
    yield
    engines_dispose()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_officer_watches_the_search_the_owner_answers_and_the_requester_downloads(
    live_server, browser, settings, demo_systems
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.SITE_URL = live_server.url
    officer = officer_create(username="olivia", email="olivia@company.example")
    req = verified_request(officer=officer, email=EMAIL, regime="gdpr")

    staff = staff_page_signed_in(browser, live_server, f"/dashboard/requests/{req.reference}/")
    staff.locator("summary", has_text="Approve and start work").click()
    staff.locator("details[open] form").get_by_role("button").click()
    staff.get_by_role("button", name="Yes, approve and start work").click()
    staff.wait_for_url("**/dashboard/requests/**")

    panel = staff.locator("#fulfilment")
    assert "Systems answered: 1 of 2" in panel.inner_text()
    assert panel.locator("progress").get_attribute("value") == "1"
    assert panel.locator('tr[data-system="shop"] [data-fulfilment="status"]').inner_text() == "Done"
    assert panel.locator('tr[data-system="shop"] [data-fulfilment="records"]').inner_text() != "0"
    assert "Still to answer" in panel.inner_text() and "sales@example.com" in panel.inner_text()
    screenshot(staff, "fulfilment-progress-desktop")

    # The spreadsheet's owner answers from the link in their email, with a CSV export.
    (task_mail,) = [m for m in mail.outbox if m.to == ["sales@example.com"]]
    link = re.search(r"https?://\S+/fulfilment/task/\S+/", task_mail.body).group(0)
    owner = page_open(browser, "en", "phone")
    owner.goto(link)
    assert EMAIL in owner.content()
    export = textwrap.dedent("""\
        email,name,company,met_on,notes
        katherine.johnson@demo.example,Katherine Johnson,Langley Research,2026-05-04,Asked about the catalogue
    """).encode()
    owner.get_by_label("Export of leads (CSV or JSON)").set_input_files(
        {"name": "leads.csv", "mimeType": "text/csv", "buffer": export}
    )
    owner.get_by_role("button", name="Send the export").click()
    owner.wait_for_load_state()
    assert "answered" in owner.content().lower()
    screenshot(owner, "fulfilment-owner-task-phone")

    # The officer's page was left open: it follows the search by itself and shows the package.
    staff.get_by_role("heading", name="Access package").wait_for(timeout=15000)
    assert "Systems answered: 2 of 2" in staff.locator("#fulfilment").inner_text()
    staff.get_by_role("button", name="Send the answer (complete the request)").click()
    staff.wait_for_url("**/dashboard/requests/**")
    assert "Completed" in staff.content()

    requester = page_open(browser, "en", "phone")
    requester.goto(f"{live_server.url}/r/{req.public_token}/")
    requester.get_by_role("button", name="Email me a download code").click()
    requester.wait_for_url(f"**/r/{req.public_token}/**")
    message = [m for m in mail.outbox if m.to == [EMAIL] and "download code" in m.subject][-1]
    code = re.search(r"^(\d{6})$", message.body, re.M).group(1)
    requester.get_by_label("The 6-digit code from our email").fill(code)
    requester.get_by_role("button", name="Open the download").click()
    requester.wait_for_url(f"**/r/{req.public_token}/**")
    with requester.expect_download() as download:
        requester.get_by_role("link", name=re.compile("Download my data")).click()
    archive = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["reference"] == req.reference
    assert {s["system"]: s["status"] for s in manifest["systems"]} == {"shop": "found", "crm_spreadsheet": "found"}
    leads = json.loads(archive.read("data/crm_spreadsheet/leads.json"))
    assert [lead["company"] for lead in leads] == ["Langley Research"]
    customer = json.loads(archive.read("data/shop/customer.json"))
    assert [c["email"] for c in customer] == [EMAIL]
    assert AccessPackage.objects.get(request=req).downloads == 1
