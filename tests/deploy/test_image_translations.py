"""The image speaks Swedish and Dutch: the compiled catalogues (*.mo) are not in git, so the image
build must make them. No Docker engine runs here: the test copies the build context as
.dockerignore and a clone leave it (no *.mo), runs the Dockerfile's `python manage.py` build steps
in it with the Dockerfile's environment, and renders the public page there."""

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

# Rendered by the public page in each language (tests/public/test_translations.py checks the same strings).
HEADINGS = {"en": "Make a privacy request", "sv": "Gör en integritetsbegäran", "nl": "Een privacyverzoek indienen"}
RENDER = """
import json, django
django.setup()
from django.test import Client
pages = {lang: Client().get("/", HTTP_ACCEPT_LANGUAGE=lang, secure=True) for lang in ("en", "sv", "nl")}
print(json.dumps({lang: [r.status_code, r.content.decode()] for lang, r in pages.items()}))
"""


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        word, _, args = current.strip().partition(" ")
        instructions.append((word.upper(), args.strip()))
        current = ""
    return instructions


def image_build(instructions) -> tuple[dict, list[str]]:
    """The ENV the build runs with, and the `python manage.py` steps of the RUN lines after the
    project is copied in (the other steps make folders and users of the image itself)."""
    env, steps, copied = {}, [], False
    for word, args in instructions:
        if word == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
        elif word == "COPY" and args.split()[-2:] == [".", "."]:
            copied = True
        elif word == "RUN" and copied:
            for step in re.split(r"\s*&&\s*", args):
                words = [w for w in shlex.split(step) if not re.match(r"^\w+=", w)]
                if words[:2] == ["python", "manage.py"]:
                    steps.append(step)
    return env, steps


def build_context(dest: Path) -> None:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip()]
    patterns.append("**/*.mo")  # ignored by git: a clone has none, whatever this checkout holds

    def ignore(folder, names):
        rel = Path(folder).relative_to(ROOT)
        return [
            name
            for name in names
            if any(
                fnmatch.fnmatch(name, p[3:]) if p.startswith("**/") else (rel / name).as_posix() == p for p in patterns
            )
        ]

    shutil.copytree(ROOT, dest, ignore=ignore)


def _render(app: Path, env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", RENDER], cwd=app, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_image_build_compiles_the_catalogues_so_pages_render_in_swedish_and_dutch(tmp_path):
    image_env, steps = image_build(dockerfile_instructions((ROOT / "Dockerfile").read_text()))
    assert image_env.get("DJANGO_SETTINGS_MODULE") == "config.settings.production"
    app = tmp_path / "app"
    build_context(app)
    assert not list(app.rglob("*.mo"))
    # `python` in the build steps is the image's interpreter: here, this one.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    env = {**image_env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "DSR_VAR_DIR": str(tmp_path / "var")}
    runtime = {
        **env,
        "DJANGO_SECRET_KEY": "runtime-secret-key",
        "DSR_AUDIT_KEY": "runtime-audit-key",
        "DSR_PACKAGE_KEY": "runtime-package-key",
        "DSR_SUPPRESSION_KEY": "runtime-suppression-key",
        "DSR_LEDGER_KEY": "runtime-ledger-key",
        "DSR_ERASURE_HASH_KEY": "runtime-erasure-hash-key",
    }

    before = _render(app, runtime)
    assert all(status == 200 for status, _ in before.values())
    assert HEADINGS["sv"] not in before["sv"][1] and HEADINGS["en"] in before["sv"][1]  # English only, so far

    for step in steps:
        result = subprocess.run(["sh", "-c", step], cwd=app, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{step}\n{result.stdout}{result.stderr}"
    catalogues = sorted(p.relative_to(app).as_posix() for p in app.rglob("*.mo"))
    assert catalogues == ["locale/nl/LC_MESSAGES/django.mo", "locale/sv/LC_MESSAGES/django.mo"], steps

    after = _render(app, runtime)
    for language, heading in HEADINGS.items():
        status, page = after[language]
        assert status == 200 and heading in page, language
