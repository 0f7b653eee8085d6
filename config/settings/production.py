"""Production (the image and docker-compose.yml): the keys come from the environment and nowhere
else; HTTPS, HSTS, secure cookies, the database, Redis and mail are set by environment variables
(compose sets them, and `manage.py check --deploy` is clean under its environment)."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import audit_keys, env


def key_required(variable: str) -> str:
    value = env.str(variable, default="")
    if not value:
        raise ImproperlyConfigured(f"{variable} must be set in production")
    return value


SECRET_KEY = key_required("DJANGO_SECRET_KEY")
# Kept outside the database and its backups: without it the audit chains cannot be verified.
DSR_AUDIT_KEYS = audit_keys(key_required("DSR_AUDIT_KEY"))
# Access packages and per-system results are encrypted under it; also kept outside the database.
DSR_PACKAGE_KEY = key_required("DSR_PACKAGE_KEY")
# The suppression list's hashes are keyed with it; also outside the database, and never rotated
# without re-adding the list (a changed key matches none of the stored hashes).
DSR_SUPPRESSION_KEY = key_required("DSR_SUPPRESSION_KEY")
# The erasure ledger's HMAC key; also kept outside the database and its backups.
DSR_LEDGER_KEY = key_required("DSR_LEDGER_KEY")
# The key of the erasure's `hash` strategy (joins still work, the values are gone): outside the
# database, like the others.
DSR_ERASURE_HASH_KEY = key_required("DSR_ERASURE_HASH_KEY")
