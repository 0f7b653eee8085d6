"""Every public string exists in Swedish and Dutch; a string added without translation fails here."""

import os
import re
import shutil
import subprocess
import sys

import polib
import pytest

from tests.support import ROOT
from tests.support.services import service_missing

LANGUAGES = ("sv", "nl")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def _untranslated(po) -> list[str]:
    bad = []
    for entry in po:
        if entry.obsolete:
            continue
        if "fuzzy" in entry.flags:
            bad.append(f"fuzzy: {entry.msgid}")
        elif entry.msgid_plural:
            if not all(entry.msgstr_plural.get(i) for i in (0, 1)):
                bad.append(entry.msgid)
        elif not entry.msgstr:
            bad.append(entry.msgid)
    return bad


@pytest.mark.parametrize("language", LANGUAGES)
def test_committed_catalogue_is_complete_and_placeholders_match(language):
    po = polib.pofile(str(ROOT / "locale" / language / "LC_MESSAGES" / "django.po"))
    assert len(po) > 200
    assert _untranslated(po) == []
    for entry in po:
        translations = entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]
        for text in translations:
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(entry.msgid)), entry.msgid


def test_every_string_in_the_source_is_translated(tmp_path):
    """Extract the strings from the code as it is now and merge them into a copy of the
    catalogues: anything new or changed comes out untranslated or fuzzy."""
    if not shutil.which("xgettext") or not shutil.which("msgmerge"):
        service_missing("gettext (xgettext, msgmerge)")
    for name in ("manage.py", "config", "dsr", "templates", "locale"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings.test", DSR_VAR_DIR=str(tmp_path / "var"))
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", *[f"-l{lang}" for lang in LANGUAGES], "--no-location"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    for language in LANGUAGES:
        po = polib.pofile(str(tmp_path / "locale" / language / "LC_MESSAGES" / "django.po"))
        assert _untranslated(po) == [], f"{language}: strings without a translation"


@pytest.mark.django_db
def test_pages_speak_the_browsers_language(client):
    assert "Gör en integritetsbegäran" in client.get("/", HTTP_ACCEPT_LANGUAGE="sv").content.decode()
    assert "Een privacyverzoek indienen" in client.get("/", HTTP_ACCEPT_LANGUAGE="nl").content.decode()
    assert "Make a privacy request" in client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


@pytest.mark.django_db
def test_language_switch_works_without_javascript(client):
    res = client.post("/i18n/setlang/", {"language": "nl", "next": "/"})
    assert res.status_code == 302
    assert "Een privacyverzoek indienen" in client.get("/").content.decode()


@pytest.mark.django_db
def test_emails_go_out_in_the_requests_language(django_capture_on_commit_callbacks, mailoutbox):
    from tests.factories import request_create

    with django_capture_on_commit_callbacks(execute=True):
        request_create(language="sv", email="sv@example.org")
        request_create(language="nl", email="nl@example.org")
    sv, nl = mailoutbox
    assert sv.subject.startswith("Vi har tagit emot din integritetsbegäran")
    assert "Bekräfta först din e-postadress" in sv.body
    assert nl.subject.startswith("Wij hebben uw privacyverzoek")
    assert "Bevestig eerst uw e-mailadres" in nl.body
