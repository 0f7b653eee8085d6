"""Every email: listed in the docs, rendered in each language with both parts and working links."""

import io

import pytest
from django.core.management import call_command

from dsr.email_catalogue import CATALOGUE, sample_context
from dsr.services.emails import email_render
from tests.support import ROOT

TEMPLATES = sorted(p.name.removesuffix(".subject.txt") for p in (ROOT / "templates" / "emails").glob("*.subject.txt"))
REQUESTER = [k for k in CATALOGUE if k.audience == "requester"]


def test_the_catalogue_lists_every_template_once():
    assert sorted(k.template for k in CATALOGUE) == TEMPLATES


def test_docs_page_is_up_to_date():
    out = io.StringIO()
    call_command("dsr_email_catalogue", stdout=out)
    assert (ROOT / "docs" / "emails.md").read_text() == out.getvalue(), (
        "run: python manage.py dsr_email_catalogue > docs/emails.md"
    )


@pytest.mark.parametrize("kind", REQUESTER, ids=lambda k: k.template)
@pytest.mark.parametrize("language", ["en", "sv", "nl"])
def test_requester_email_renders_in_each_language(kind, language):
    rendered = email_render(template=kind.template, language=language, context=sample_context(kind, language))
    english = email_render(template=kind.template, language="en", context=sample_context(kind, "en"))
    assert rendered.subject and "\n" not in rendered.subject
    assert "Example Company" in rendered.text and "privacy@example.com" in rendered.text
    assert f'<html lang="{language}">' in rendered.html
    if language != "en":
        assert rendered.subject != english.subject, "subject not translated"
        assert rendered.text != english.text, "body not translated"
    links = [line.strip() for line in rendered.text.splitlines() if line.strip().startswith("https://")]
    if kind.template != "forwarded":
        assert links, "no link to the request"
    for link in links:
        assert f'href="{link}"' in rendered.html  # the HTML part links where the text part points
    for value in kind.context.values():
        if isinstance(value, str) and len(value) > 20:
            assert value in rendered.text  # what the team wrote reaches the requester unchanged


@pytest.mark.parametrize("kind", [k for k in CATALOGUE if k.audience != "requester"], ids=lambda k: k.template)
def test_staff_and_organisation_emails_name_the_request(kind):
    rendered = email_render(template=kind.template, language="en", context=sample_context(kind))
    assert "DSR-2026-000042" in rendered.subject
    assert "https://" in rendered.text or kind.audience == "organisation"
