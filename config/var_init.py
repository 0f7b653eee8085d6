"""Prepare run mode's var/ folder: the secret and audit keys, the Celery broker's folders, the mail
and cache folders. Settings only read what this writes; `make run` runs it before migrating.

    python -m config.var_init      # DSR_VAR_DIR chooses the folder, as in the settings

Running it again changes nothing: a key, once written, is kept (links in sent mail and the audit
chains depend on it). Production never uses it: its keys come from the environment."""

import os
import secrets
import sys
import tempfile
from pathlib import Path


def key_write(path: Path) -> bool:
    """Write a new random key to `path` unless a key is there; True when one was written. The file
    appears whole or not at all (written aside, then linked), readable by its owner only."""
    if path.exists() and path.read_text().strip():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, spare = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
        if path.exists():  # empty: left by an interrupted older version
            path.unlink()
        try:
            os.link(spare, path)
        except FileExistsError:  # another run wrote it meanwhile: keep that one
            return False
        return True
    finally:
        os.unlink(spare)


def var_init() -> list[str]:
    """Create what run mode reads under var/; returns what was created."""
    from config.settings import base

    created = []
    folders = [base.VAR_DIR]
    if base.CELERY_BROKER_URL == "filesystem://":
        options = base.CELERY_BROKER_TRANSPORT_OPTIONS
        folders += [Path(str(options[name])) for name in ("data_folder_in", "data_folder_out", "control_folder")]
    if base.EMAIL_BACKEND == "django.core.mail.backends.filebased.EmailBackend":
        folders.append(Path(base.EMAIL_FILE_PATH))
    if base.CACHES["default"]["BACKEND"] == "django.core.cache.backends.filebased.FileBasedCache":
        folders.append(Path(base.CACHES["default"]["LOCATION"]))
    for folder in folders:
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            created.append(str(folder))
    # Keys given in the environment win (config/settings/run.py); no file is written for them.
    keys = (
        ("DJANGO_SECRET_KEY", "secret_key"),
        ("DSR_AUDIT_KEY", "audit_key"),
        ("DSR_PACKAGE_KEY", "package_key"),
        ("DSR_SUPPRESSION_KEY", "suppression_key"),
    )
    for variable, file_name in keys:
        if not os.environ.get(variable) and key_write(base.VAR_DIR / file_name):
            created.append(str(base.VAR_DIR / file_name))
    return created


def main() -> int:
    for path in var_init():
        print(f"created {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
