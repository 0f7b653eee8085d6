"""Run mode (`make run`): the defaults of config/settings/base.py — SQLite under var/, Celery on
kombu's filesystem transport, mail as files under var/mail/ — with two-factor sign-in off for the
demo. The keys come from the environment or from var/secret_key and var/audit_key, which
`python -m config.var_init` (the first step of `make run`) writes; loading this module writes nothing."""

import hashlib
import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DEBUG, SITE_URL, VAR_DIR, audit_keys, env


def key_read(variable: str, file_name: str) -> str:
    """The key from the environment, else the one config.var_init kept under var/ (so links in sent
    mail and the audit chains survive a restart)."""
    value = env.str(variable, default="")
    if value:
        return value
    if not DEBUG and env.bool("DSR_REQUIRE_SECRET_KEY", default=False):
        raise ImproperlyConfigured(f"{variable} must be set in production")
    path = VAR_DIR / file_name
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if not value:
        raise ImproperlyConfigured(
            f"{variable} is not set and {path} holds no key: run `make run`, or `python -m config.var_init` once"
        )
    return value


SECRET_KEY = key_read("DJANGO_SECRET_KEY", "secret_key")
DSR_AUDIT_KEYS = audit_keys(key_read("DSR_AUDIT_KEY", "audit_key"))
DSR_PACKAGE_KEY = key_read("DSR_PACKAGE_KEY", "package_key")
DSR_SUPPRESSION_KEY = key_read("DSR_SUPPRESSION_KEY", "suppression_key")
# The erasure ledger's key, derived from the secret key unless the shell sets one.
DSR_LEDGER_KEY = (
    env.str("DSR_LEDGER_KEY", default="") or hashlib.sha256(b"erasure ledger\x00" + SECRET_KEY.encode()).hexdigest()
)

# The demo systems of the shipped data map (config/datamap.yaml): the shop's SQLite database under
# var/ (made by `manage.py dsr_demo_shop`) and a processor served by the product itself. The map
# names only environment variables; run mode gives them their demo values unless the shell does.
DSR_DEMO_SYSTEMS = env.bool("DSR_DEMO_SYSTEMS", default=True)
os.environ.setdefault("DSR_DEMO_SHOP_DSN", f"sqlite:///{VAR_DIR / 'demo_shop.sqlite3'}")
os.environ.setdefault("DSR_DEMO_PROCESSOR_URL", f"{SITE_URL}/demo/processor/")
# The demo processor's signing secret, derived from the secret key (both ends are this product).
os.environ.setdefault(
    "DSR_DEMO_PROCESSOR_SECRET", hashlib.sha256(b"demo processor\x00" + SECRET_KEY.encode()).hexdigest()
)
# Erasure's keyed hash, derived from the secret key unless the shell sets one.
DSR_ERASURE_HASH_KEY = (
    env.str("DSR_ERASURE_HASH_KEY", default="") or hashlib.sha256(b"erasure hash\x00" + SECRET_KEY.encode()).hexdigest()
)

# The demo signs in without an authenticator app; production keeps two-factor sign-in on.
DSR_REQUIRE_2FA = env.bool("DSR_REQUIRE_2FA", default=False)
