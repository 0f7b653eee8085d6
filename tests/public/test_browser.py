"""The public side in a real browser: Debian's Chromium driven by Playwright. Each language,
verification by link and by code, the status page; screenshots on a phone and a desktop viewport
are written to tests/artifacts/ (not committed)."""

import re

import pytest
from django.core import mail

from dsr.models import DataSubjectRequest, DemoCustomer, Status
from tests.support.browser import page_open, screenshot

# What a person reads and clicks, per language.
TEXT = {
    "en": {
        "heading": "Make a privacy request",
        "type": "See what data you hold about me (categories)",
        "regime": "California (CCPA)",
        "email": "Your email address",
        "name": "Your full name",
        "send": "Send my request",
        "next": "What happens next",
        "confirm_button": "Confirm my email address",
        "code": "The 6-digit code from our email",
        "confirm": "Confirm",
        "postal": "Your postal code",
        "check": "Check my details",
        "verified": "Verified",
        "subject": "We received your privacy request",
    },
    "sv": {
        "heading": "Gör en integritetsbegäran",
        "type": "Se vilka uppgifter ni har om mig (kategorier)",
        "regime": "EU/EES, Storbritannien eller Schweiz (GDPR)",
        "email": "Din e-postadress",
        "name": "Ditt fullständiga namn",
        "send": "Skicka min begäran",
        "next": "Vad som händer nu",
        "confirm_button": "Bekräfta min e-postadress",
        "code": "Den sexsiffriga koden från vårt e-postmeddelande",
        "confirm": "Bekräfta",
        "postal": "Ditt postnummer",
        "check": "Kontrollera mina uppgifter",
        "verified": "Kontrollerad",
        "subject": "Vi har tagit emot din integritetsbegäran",
    },
    "nl": {
        "heading": "Een privacyverzoek indienen",
        "type": "Zien welke gegevens u over mij heeft (categorieën)",
        "regime": "EU/EER, VK of Zwitserland (AVG)",
        "email": "Uw e-mailadres",
        "name": "Uw volledige naam",
        "send": "Mijn verzoek versturen",
        "next": "Wat er nu gebeurt",
        "confirm_button": "Mijn e-mailadres bevestigen",
        "code": "De 6-cijferige code uit onze e-mail",
        "confirm": "Bevestigen",
        "postal": "Uw postcode",
        "check": "Mijn gegevens controleren",
        "verified": "Geverifieerd",
        "subject": "Wij hebben uw privacyverzoek",
    },
}


def _submit(page, live_server, t, email):
    page.goto(live_server.url + "/")
    assert page.get_by_role("heading", level=1).inner_text() == t["heading"]
    page.get_by_label(t["type"], exact=True).check()
    page.get_by_label(t["regime"], exact=True).check()
    page.get_by_label(t["email"], exact=True).fill(email)
    page.get_by_label(t["name"], exact=True).fill("Test Person")
    page.get_by_role("button", name=t["send"]).click()
    page.wait_for_url("**/submitted/")
    assert t["next"] in page.content()


def _mail_for(email):
    sent = [m for m in mail.outbox if m.to == [email]]
    assert sent, f"no email to {email}"
    return sent[-1]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "language,viewport,method",
    [("en", "phone", "link"), ("sv", "desktop", "code"), ("nl", "phone", "code"), ("nl", "desktop", "link")],
)
def test_submit_verify_and_follow_in_each_language(live_server, browser, settings, language, viewport, method):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.SITE_URL = live_server.url
    t = TEXT[language]
    email = f"{language}-{viewport}@example.org"
    DemoCustomer.objects.create(email=email, full_name="Test Person", postal_code="1011 AB")
    page = page_open(browser, language, viewport)
    _submit(page, live_server, t, email)
    screenshot(page, f"confirmation-{language}-{viewport}")
    r = DataSubjectRequest.objects.get(email=email)
    assert r.language == language and r.status == Status.AWAITING_VERIFICATION
    message = _mail_for(email)
    assert message.subject.startswith(t["subject"])
    status_url = re.search(r"(http://\S+/r/[\w-]+/)", message.body).group(1)
    if method == "link":
        page.goto(re.search(r"(http://\S+/v/[\w-]+/)", message.body).group(1))
        page.get_by_role("button", name=t["confirm_button"]).click()
    else:
        page.goto(status_url)
        code = re.search(r": (\d{6})", message.body).group(1)
        page.get_by_label(t["code"]).fill(code)
        page.get_by_role("button", name=t["confirm"], exact=True).click()
    page.wait_for_url(f"**/r/{r.public_token}/")
    page.get_by_label(t["postal"]).fill("1011ab")
    page.get_by_role("button", name=t["check"]).click()
    page.wait_for_url(f"**/r/{r.public_token}/")
    assert t["verified"] in page.content()
    r.refresh_from_db()
    assert r.status == Status.VERIFIED
    screenshot(page, f"status-{language}-{viewport}")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_form_screenshots_and_errors_keep_what_was_typed(live_server, browser, viewport):
    page = page_open(browser, "en", viewport)
    page.goto(live_server.url + "/")
    screenshot(page, f"form-en-{viewport}")
    page.get_by_label("Your email address", exact=True).fill("not-an-email")
    page.get_by_label("Your full name", exact=True).fill("Kept")
    page.get_by_role("button", name="Send my request").click()
    assert page.get_by_role("alert").first.is_visible()
    assert page.get_by_label("Your full name", exact=True).input_value() == "Kept"
    screenshot(page, f"form-errors-en-{viewport}")
    assert DataSubjectRequest.objects.count() == 0


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_language_switch_and_keyboard_only_submission(live_server, browser):
    page = page_open(browser, "en", "desktop")
    page.goto(live_server.url + "/")
    page.get_by_label("Language").select_option("sv")
    page.get_by_role("button", name="Change").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Gör en integritetsbegäran"
    # Keyboard only: radios by arrow keys, fields by Tab, submit with Enter.
    page.get_by_label("Radera mina uppgifter", exact=True).focus()
    page.keyboard.press("Space")
    page.get_by_label("Kalifornien (CCPA)", exact=True).focus()
    page.keyboard.press("Space")
    page.get_by_label("Din e-postadress", exact=True).focus()
    page.keyboard.type("keys@example.org")
    page.keyboard.press("Enter")
    page.wait_for_url("**/submitted/")
    r = DataSubjectRequest.objects.get(email="keys@example.org")
    assert (r.request_type, r.regime, r.language) == ("erasure", "ccpa", "sv")
