"""What a requester types never becomes markup or a link in the company's emails, and emails to
the requester (most go to an address nobody has confirmed yet) and to the team repeat none of it.
Tested as a rule over every email template, with hostile values in every typed field."""

import re
from html.parser import HTMLParser

import pytest
from django.db import models

from dsr.email_catalogue import CATALOGUE, sample_context, sample_request
from dsr.models import DataSubjectRequest, Organisation, OutboundEmail
from dsr.services.emails import PRODUCT_LINKS, email_render
from tests.support import ROOT


# Every value from outside the product carries "evil.example", so it can be found wherever it went.
REQUESTER_TYPED = {
    "full_name": "<a href=https://evil.example>Click</a><img src=https://evil.example/x.png>",
    "email": '"<b>https://evil.example/login</b>"@evil.example',
    "details": "Log in at https://evil.example/login or www.evil.example\n<script>alert(1)</script> help@evil.example",
    "agent_name": "<img src=x onerror=alert(1)> www.evil.example",
    "agent_email": "agent@evil.example",
    "corrections": [{"field": "other", "wrong": "<i>x</i> evil.example", "correct": "https://evil.example/c"}],
    # What a mail server reported (a requester runs the server that bounces their own address).
    "flag_reason": "Email 'received' failed: 550 verify at https://evil.example/x",
}
# Staff write these to the requester: they may appear, but escaped and never as links.
STAFF_TYPED = {
    "extension_reason": "Staff <b>bold</b> see https://staff-link.example/a",
    "response_message": 'Staff <a href="https://staff-link.example">x</a>',
}
PRODUCT_SET = {
    "reference",
    "public_token",
    "request_type",
    "regime",
    "channel",
    "language",
    "status",
    "relationship",
    "access_period",
    "outcome",
    "denial_reason",
    "verification_method",
    "audit_head",
}
STAFF_CONTEXT = 'Staff <img src=https://staff-link.example/p.png> wrote\nwww.staff-link.example <a href="https://staff-link.example">x</a>'

STAFF_CONTEXT_KEYS = {"message", "reason", "by"}
PRODUCT_CONTEXT_KEYS = {"verify_url", "verify_code", "outcome", "original_status_url", "failure", "task_url"}


def test_every_text_field_of_a_request_is_classified():
    """A new field must be put in one of the groups above, so the rule below covers it."""
    text_fields = {
        f.name
        for f in DataSubjectRequest._meta.concrete_fields
        if isinstance(f, (models.CharField, models.TextField, models.JSONField))
    }
    assert text_fields == set(REQUESTER_TYPED) | set(STAFF_TYPED) | PRODUCT_SET
    context_strings = {k for kind in CATALOGUE for k, v in kind.context.items() if isinstance(v, str)}
    assert context_strings == STAFF_CONTEXT_KEYS | PRODUCT_CONTEXT_KEYS


def _hostile_context(kind, language="en") -> dict:
    context = sample_context(kind, language)
    context["request"] = sample_request(language=language, **REQUESTER_TYPED, **STAFF_TYPED)
    for key in STAFF_CONTEXT_KEYS & set(kind.context):
        context[key] = STAFF_CONTEXT
    if "failed" in context:
        context["failed"] = OutboundEmail(
            template="received",
            to=REQUESTER_TYPED["email"],
            last_error="550 https://evil.example/x",
            delivery_detail="<b>evil.example</b>",
        )
    if "organisation" in context:  # set by an administrator: escaped all the same
        context["organisation"] = Organisation(
            name="Acme <b>Corp</b>", email_domain="evil.example", admin_contact_email="it-admin@acme.example"
        )
    return context


class _Markup(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(attrs)))
        if tag in ("p", "br"):
            self.text.append("\n")  # a line break reads as white space

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, tuple(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _markup(html: str) -> _Markup:
    parser = _Markup()
    parser.feed(html)
    parser.close()
    return parser


def _squash(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("kind", CATALOGUE, ids=lambda k: k.template)
@pytest.mark.parametrize("language", ["en", "sv"])
def test_html_part_has_only_the_products_markup_and_links(kind, language):
    benign = _markup(
        email_render(template=kind.template, language=language, context=sample_context(kind, language)).html
    )
    context = _hostile_context(kind, language)
    rendered = email_render(template=kind.template, language=language, context=context)
    hostile = _markup(rendered.html)
    # The same elements as with harmless values; paragraphs and line breaks come from the layout.
    structure = [t for t in hostile.tags if t[0] not in ("p", "br")]
    assert structure == [t for t in benign.tags if t[0] not in ("p", "br")]
    assert {t for t, _ in hostile.tags} <= {
        "html",
        "head",
        "meta",
        "title",
        "body",
        "table",
        "tr",
        "td",
        "p",
        "br",
        "a",
    }
    product_urls = {context[k] for k in PRODUCT_LINKS if context.get(k)} | {"http://testserver/"}
    hrefs = [dict(attrs).get("href") for tag, attrs in hostile.tags if tag == "a"]
    assert set(hrefs) <= product_urls
    assert all(dict(attrs) == {"href": dict(attrs)["href"]} for tag, attrs in hostile.tags if tag == "a")
    # Escaped, not dropped: the HTML part reads exactly as the text part.
    assert _squash(rendered.text) in _squash("".join(hostile.text))


@pytest.mark.parametrize("kind", CATALOGUE, ids=lambda k: k.template)
def test_emails_repeat_nothing_the_requester_typed(kind):
    """Requester emails (received, verification, reminders… go to an address not yet confirmed)
    and team emails carry none of the typed values; the organisation forward names the address only."""
    rendered = email_render(template=kind.template, language="en", context=_hostile_context(kind))
    parts = {"subject": rendered.subject, "text": rendered.text, "html": rendered.html}
    if kind.audience == "organisation":
        assert REQUESTER_TYPED["email"] in rendered.text
        for part in parts.values():
            part = part.replace(REQUESTER_TYPED["email"], "").replace(
                "&quot;&lt;b&gt;https://evil.example/login&lt;/b&gt;&quot;@evil.example", ""
            )
            assert "evil.example" not in part
    else:
        for name, part in parts.items():
            assert "evil.example" not in part, f"{name} repeats typed text"


def test_subjects_and_text_parts_are_plain_text():
    """The text part is not marked safe HTML, so nothing can later pass it into a page unescaped."""
    from django.utils.safestring import SafeData

    kind = CATALOGUE[0]
    rendered = email_render(template=kind.template, language="en", context=_hostile_context(kind))
    assert not isinstance(rendered.text, SafeData) and not isinstance(rendered.subject, SafeData)
    assert "&lt;" not in rendered.text and "&amp;" not in rendered.text  # not HTML-escaped either


def test_no_email_template_turns_off_escaping_or_links_text():
    for path in (ROOT / "templates" / "emails").iterdir():
        source = path.read_text()
        assert "autoescape off" not in source and "|safe" not in source and "urlize" not in source, path.name


@pytest.mark.django_db
def test_a_hostile_name_submitted_through_the_form_reaches_no_email(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    from dsr.models import Organisation as Org

    Org.objects.create(name="Acme", email_domain="acme.example", admin_contact_email="admin@acme.example")
    name = "<a href=https://evil.example>Click</a><img src=https://evil.example/x.png>"
    details = "Your account is locked: https://evil.example/login\nCall +1 555 0100"
    with django_capture_on_commit_callbacks(execute=True):
        for email, relationship in (("victim@example.org", "customer"), ("victim@acme.example", "org_user")):
            res = client.post(
                "/",
                {
                    "request_type": "erasure",
                    "regime": "gdpr",
                    "relationship": relationship,
                    "email": email,
                    "full_name": name,
                    "details": details,
                },
            )
            assert res.status_code == 302
    assert len(mailoutbox) == 3  # received; forwarded to the user and to the administrator
    for message in mailoutbox:
        html = message.alternatives[0][0]
        for part in (message.subject, message.body, html):
            assert "evil.example" not in part and "<img" not in part
        assert all(h.startswith("http://testserver/") for h in re.findall(r'href="([^"]+)"', html))
