"""A strict Content-Security-Policy: on every page, and nothing inline for it to forbid. The real
browser proof, page by page, is tests/security/test_browser_csp.py."""

import re

import pytest

from tests.factories import request_create
from tests.support import ROOT

pytestmark = pytest.mark.django_db
TEMPLATES = ROOT / "templates"
# Emails are read in mail clients, which need inline style; no page includes them.
PAGE_TEMPLATES = sorted(p for p in TEMPLATES.rglob("*.html") if "emails" not in p.relative_to(TEMPLATES).parts)
INLINE = {
    "inline <script>": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "<style> element": re.compile(r"<style\b", re.I),
    "style attribute": re.compile(r"\sstyle\s*=", re.I),
    "event handler attribute": re.compile(r"\son[a-z]+\s*=", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
}


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in header.split(";") if d.strip()}


@pytest.mark.parametrize("template", PAGE_TEMPLATES, ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_template_has_inline_script_style_or_handlers(template):
    text = template.read_text()
    found = [what for what, pattern in INLINE.items() if pattern.search(text)]
    assert not found, f"{template.relative_to(TEMPLATES)}: {found}"


def test_every_page_kind_carries_the_strict_policy(client, officer):
    r = request_create()
    client.force_login(officer)
    pages = [
        "/",
        f"/r/{r.public_token}/",
        "/accounts/login/",
        "/dashboard/",
        f"/dashboard/requests/{r.reference}/",
        "/dashboard/reports/",
        "/api/docs/",
        "/api/docs/?script=",
        "/admin/",
    ]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        policy = _policy(response)
        assert policy["default-src"] == ["'none'"] and policy["script-src"] == ["'self'"], path
        assert policy["style-src"] == ["'self'"] and policy["object-src"] == ["'none'"], path
        assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'none'"], path
        assert "'unsafe-inline'" not in response["Content-Security-Policy"], path
        assert "'unsafe-eval'" not in response["Content-Security-Policy"], path
        if response["Content-Type"].startswith("text/html"):
            body = response.content.decode()
            found = [what for what, pattern in INLINE.items() if pattern.search(body)]
            assert not found, f"{path}: {found}"


def test_api_docs_load_their_start_up_script_as_a_file(client):
    page = client.get("/api/docs/").content.decode()
    assert '<script src="/api/docs/?script="></script>' in page
    script = client.get("/api/docs/?script=")
    assert script["Content-Type"].startswith("application/javascript") and b"SwaggerUIBundle" in script.content
