"""The Content-Security-Policy in the real browser: every kind of page, public and staff, loads
with no `securitypolicyviolation` event and no CSP error on the console, and still works (the
form submits, the code verifies, Swagger UI draws the API)."""

import re

import pytest
from django.core import mail
from django_otp.plugins.otp_totp.models import TOTPDevice

from dsr.models import DataSubjectRequest
from tests.factories import officer_create, request_create
from tests.support.browser import page_open
from tests.support.otp import totp_code

# Runs before any page script, in every document: the browser reports each blocked thing here.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


class Watch:
    def __init__(self, page):
        self.page, self.console, self.documents, self.visited = page, [], [], []
        page.context.add_init_script(RECORD_VIOLATIONS)
        page.on("console", lambda m: self.console.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("response", lambda r: self.documents.append(r) if r.request.resource_type == "document" else None)

    def check(self, kind: str):
        """Everything the page did so far, once the network is quiet."""
        self.page.wait_for_load_state("networkidle")
        violations = self.page.evaluate("window.__csp")
        assert violations == [] and self.console == [], f"{kind}: {violations} {self.console}"
        document = self.documents[-1]
        policy = document.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy, f"{kind}: {document.url} {policy!r}"
        self.visited.append(kind)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_every_page_kind_loads_under_the_policy_without_a_violation(live_server, browser, settings):
    settings.DSR_REQUIRE_2FA = True
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.SITE_URL = live_server.url
    page = page_open(browser, "en", "desktop")
    watch = Watch(page)

    page.goto(live_server.url + "/")
    watch.check("public form")
    page.get_by_label("See what data you hold about me (categories)", exact=True).check()
    page.get_by_label("California (CCPA)", exact=True).check()
    page.get_by_label("Your email address", exact=True).fill("csp@example.org")
    page.get_by_label("Your full name", exact=True).fill("Pat Person")
    page.get_by_role("button", name="Send my request").click()
    page.wait_for_url("**/submitted/")
    watch.check("confirmation")

    r = DataSubjectRequest.objects.get(email="csp@example.org")
    body = [m for m in mail.outbox if m.to == ["csp@example.org"]][-1].body
    page.goto(re.search(r"(http://\S+/r/[\w-]+/)", body).group(1))
    assert page.get_by_role("heading", level=1).is_visible()
    watch.check("status page")
    page.goto(re.search(r"(http://\S+/v/[\w-]+/)", body).group(1))
    watch.check("email confirm")
    page.get_by_role("button", name="Confirm my email address").click()
    page.wait_for_url(f"**/r/{r.public_token}/")
    watch.check("status page after confirming")

    officer_create(username="olivia", email="olivia@company.example")
    page.goto(live_server.url + "/dashboard/")
    page.wait_for_url("**/accounts/login/**")
    watch.check("sign-in")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/accounts/otp/**")
    assert page.locator(".qr svg").is_visible()
    watch.check("second-factor page")
    page.get_by_label("6-digit code from your authenticator app").fill(
        totp_code(TOTPDevice.objects.get(user__username="olivia"))
    )
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/dashboard/")
    watch.check("dashboard queue")
    page.get_by_role("link", name=r.reference).click()
    watch.check("request page")
    page.locator("summary", has_text="Verify identity").click()
    form = page.locator("details[open] form")
    form.get_by_label("Note on the evidence").fill("Matches.")
    form.get_by_role("button").click()
    watch.check("action confirmation")
    request_create(email="closed@example.org")
    page.goto(live_server.url + "/dashboard/reports/")
    assert page.locator("figure.chart svg").count() == 3
    watch.check("reports")

    page.goto(f"{live_server.url}/admin/dsr/datasubjectrequest/{r.pk}/change/")
    assert page.locator("#content-main form").count() == 1  # the change form, with its scripts
    watch.check("admin")

    page.goto(live_server.url + "/api/docs/")
    page.locator(".swagger-ui .info .title", has_text="DSR API").wait_for()
    page.locator(".opblock-summary-path", has_text="/api/v1/requests/").first.wait_for()
    watch.check("API docs")

    assert watch.visited == [
        "public form",
        "confirmation",
        "status page",
        "email confirm",
        "status page after confirming",
        "sign-in",
        "second-factor page",
        "dashboard queue",
        "request page",
        "action confirmation",
        "reports",
        "admin",
        "API docs",
    ]
    # The detector works: an inline style set now is blocked and reported.
    page.evaluate("document.body.setAttribute('style', 'color: red')")
    page.wait_for_function("window.__csp.length > 0")
    assert "style-src" in page.evaluate("window.__csp")[0]
