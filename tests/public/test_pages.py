"""The minimal public form, status page and staff list."""

from html.parser import HTMLParser

import pytest

from dsr.models import DataSubjectRequest
from tests.factories import request_create

pytestmark = pytest.mark.django_db


def test_form_submits_any_request_type(client, django_capture_on_commit_callbacks, mailoutbox):
    page = client.get("/")
    assert page.status_code == 200
    html = page.content.decode()
    for value in (
        "access",
        "access_specific",
        "portability",
        "rectification",
        "erasure",
        "restriction",
        "objection",
        "withdraw_consent",
        "opt_out_sale",
        "opt_out_marketing",
        "limit_sensitive",
    ):
        assert f'value="{value}"' in html
    with django_capture_on_commit_callbacks(execute=True):
        res = client.post(
            "/",
            {
                "request_type": "portability",
                "regime": "gdpr",
                "relationship": "customer",
                "email": "eva@example.org",
                "full_name": "Eva",
            },
        )
    assert res.status_code == 302 and res["Location"] == "/submitted/"
    r = DataSubjectRequest.objects.get()
    assert (r.request_type, r.regime, r.email, r.channel) == ("portability", "gdpr", "eva@example.org", "web")
    done = client.get("/submitted/")
    assert "What happens next" in done.content.decode()
    assert r.respond_by.strftime("%Y") in done.content.decode()
    assert len(mailoutbox) == 1


def _checked(html: str, name: str) -> list[str]:
    """The values of the inputs called `name` that the page shows checked."""
    found = []

    class Inputs(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "input" and attrs.get("name") == name and "checked" in attrs:
                found.append(attrs.get("value"))

    Inputs().feed(html)
    return found


def test_form_errors_keep_what_was_typed(client):
    res = client.post(
        "/",
        {"request_type": "erasure", "regime": "", "email": "nope", "full_name": "Kept Name", "details": "kept details"},
    )
    assert res.status_code == 400
    html = res.content.decode()
    assert 'role="alert"' in html
    assert 'value="Kept Name"' in html and "kept details" in html
    assert _checked(html, "request_type") == ["erasure"]  # the choice is kept, and only it
    assert _checked(html, "regime") == []
    assert DataSubjectRequest.objects.count() == 0


def test_form_honours_the_browser_language(client):
    client.post(
        "/",
        {"request_type": "access", "regime": "gdpr", "relationship": "customer", "email": "sven@example.org"},
        HTTP_ACCEPT_LANGUAGE="sv",
    )
    assert DataSubjectRequest.objects.get().language == "sv"


def test_status_page_by_token_only(client):
    r = request_create()
    res = client.get(f"/r/{r.public_token}/")
    assert res.status_code == 200 and r.reference in res.content.decode()
    wrong = client.get("/r/not-a-real-token/")
    assert wrong.status_code == 404
    assert r.reference not in wrong.content.decode() and r.email not in wrong.content.decode()


def test_demo_data_loads_once(db, capsys):
    from django.core.management import call_command

    call_command("dsr_demo_load")
    first = DataSubjectRequest.objects.count()
    out1 = capsys.readouterr().out
    call_command("dsr_demo_load")
    out2 = capsys.readouterr().out
    assert first >= 5 and DataSubjectRequest.objects.count() == first
    # Keys are stored as digests, so each run prints a fresh token (it replaces the last one; see
    # tests/api/test_api_tokens.py).
    assert out1.splitlines()[-1].startswith("Demo API token: dsr_") and out2.splitlines()[-1].startswith(
        "Demo API token: dsr_"
    )
    assert set(DataSubjectRequest.objects.values_list("status", flat=True)) >= {
        "awaiting_verification",
        "in_progress",
        "completed",
        "denied",
        "verified",
    }
