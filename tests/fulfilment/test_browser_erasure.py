"""Erasure in a real browser, with the real `sql` connector on the demo shop (a SQLite file made as
`make run` makes it): the officer plans the erasure of a verified request to delete, reads the
plan (nothing changed yet), approves it, sees the shop erased and its recipients told, the shop's
owner confirms each on the task page, the officer sees it done and sends the answer; the shop's
database then holds none of the person's chats and a masked customer whose orders stay for tax law."""

import re

import pytest
import yaml
from sqlalchemy import create_engine, text

from dsr.fulfilment.connectors.sql import engines_dispose
from dsr.fulfilment.demo_shop import demo_shop_create, shop_engine
from dsr.models import OutboundEmail, Status
from tests.factories import officer_create
from tests.fulfilment.conftest import verified_request
from tests.support.browser import screenshot, staff_page_signed_in

EMAIL = "sven.svensson@demo.example"


@pytest.fixture
def demo_shop(settings, tmp_path, monkeypatch):
    dsn = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    engine = shop_engine(dsn)
    demo_shop_create(engine)
    engine.dispose()
    monkeypatch.setenv("BROWSER_SHOP_DSN", dsn)
    shipped = yaml.safe_load((settings.BASE_DIR / "config" / "datamap.yaml").read_text())
    (shop,) = [s for s in shipped["systems"] if s["name"] == "shop"]
    shop["connection"]["dsn_env"] = "BROWSER_SHOP_DSN"
    path = tmp_path / "datamap.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "systems": [shop]}, sort_keys=False))
    settings.DSR_DATAMAP = str(path)
    reader = create_engine(dsn)
    yield reader
    reader.dispose()
    engines_dispose()


def _shop_rows(reader):
    with reader.connect() as connection:
        customer = connection.execute(text("SELECT id, email, name FROM customer WHERE id = 2")).one()
        chats = connection.execute(text("SELECT count(*) FROM chat_messages WHERE customer_id = 2")).scalar_one()
        orders = connection.execute(text("SELECT count(*), max(shipping_name) FROM orders WHERE customer_id = 2")).one()
    return customer, chats, tuple(orders)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_officer_plans_reads_approves_and_the_erasure_is_done(live_server, browser, settings, demo_shop):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.SITE_URL = live_server.url
    officer = officer_create(username="olivia", email="olivia@company.example")
    req = verified_request(officer=officer, request_type="erasure", regime="gdpr", email=EMAIL)
    before = _shop_rows(demo_shop)
    assert before[0][1] == EMAIL and before[1] > 0 and before[2][0] > 0

    page = staff_page_signed_in(browser, live_server, f"/dashboard/requests/{req.reference}/")
    page.get_by_role("button", name="Plan the erasure").click()
    page.wait_for_url(f"**/dashboard/requests/{req.reference}/")

    assert "Plan the erasure: done." in page.content()
    panel = page.locator("#fulfilment")
    assert panel.locator('[data-fulfilment="state"]').inner_text() == "awaiting_approval"
    shop = panel.locator('table[data-system="shop"]')
    chat_row = shop.locator("tr", has=page.locator("th", has_text="chat_messages"))
    assert "delete" in chat_row.inner_text().lower()
    orders_row = shop.locator("tr", has=page.locator("th", has_text="orders"))
    assert "Tax law: orders are kept 7 years" in orders_row.inner_text()
    assert "shipping_name → null" in orders_row.inner_text()
    assert "The plan cannot be approved" not in panel.inner_text()
    screenshot(page, "erasure-plan-desktop")
    assert _shop_rows(demo_shop) == before  # the plan changed nothing

    page.get_by_role("button", name="Approve the erasure").click()
    page.wait_for_url(f"**/dashboard/requests/{req.reference}/")
    customer, chats, orders = _shop_rows(demo_shop)
    assert customer[1] is None and customer[2] is None  # masked: its orders still point at it
    assert chats == 0
    assert orders[0] == before[2][0] and orders[1] is None  # kept for tax law, shipping name gone
    # The shop is erased and verified; its two recipients are told and the run waits for them.
    assert page.locator('#fulfilment [data-fulfilment="state"]').inner_text() == "running"
    told = page.locator('#fulfilment table[data-recipients="told"]')
    assert "Parcel carriers" in told.inner_text() and "waiting" in told.inner_text()
    assert page.get_by_role("button", name="Send the answer (complete the request)").count() == 0
    screenshot(page, "erasure-recipients-told-desktop")

    # The shop's owner passes it on to each recipient and confirms on the task page the email links.
    links = [
        re.search(r"https?://[^/\s]+(/fulfilment/task/[^/\s]+/)", m.body_text).group(1)
        for m in OutboundEmail.objects.filter(template="owner_instruction").order_by("pk")
    ]
    assert len(links) == 2
    for link in links:
        page.goto(live_server.url + link)
        assert "Delete the personal information of the person identified here" in page.content()
        page.get_by_label(re.compile("I did what the list says")).check()
        page.get_by_role("button", name="Confirm that it is done").click()
        assert "Thank you: recorded that it is done." in page.content()
    page.goto(f"{live_server.url}/dashboard/requests/{req.reference}/")
    assert page.locator('#fulfilment [data-fulfilment="state"]').inner_text() == "done"
    screenshot(page, "erasure-done-desktop")

    page.get_by_role("button", name="Send the answer (complete the request)").click()
    page.wait_for_url(f"**/dashboard/requests/{req.reference}/")
    req.refresh_from_db()
    assert req.status == Status.COMPLETED
    assert "Tax law: orders are kept 7 years" in req.events.filter(event_type="completed").get().data["message"]
