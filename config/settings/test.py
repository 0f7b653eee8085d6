"""Test settings (pytest.ini): the shared settings but for what a test must control. DATABASE_URL
and REDIS_URL still choose real PostgreSQL and Redis when set (CI sets them). Fixed keys: nothing
is read from var/ or written there."""

from .base import *  # noqa: F403
from .base import DATABASES, DSR_RATE_LIMITS

SECRET_KEY = "test-only secret key, not secret"

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SITE_URL = "http://testserver"
DSR_ESCALATION_EMAILS = []
WHITENOISE_AUTOREFRESH = True
DATABASES["default"]["CONN_MAX_AGE"] = 0  # threads in tests must not keep sessions open
DSR_RATE_LIMITS = dict.fromkeys(DSR_RATE_LIMITS, "1000/minute")  # tests set the rate they check
DSR_REQUIRE_2FA = False
# A fixed audit key, so tests can recompute (and forge) what an attacker could.
DSR_AUDIT_KEY_ID = "test"
DSR_AUDIT_KEYS = {"test": "test-audit-key, not secret"}
DSR_PACKAGE_KEY = "test-package-key, not secret"
DSR_ERASURE_HASH_KEY = "test-erasure-hash-key, not secret"
DSR_SUPPRESSION_KEY = "test-suppression-key, not secret"
DSR_LEDGER_KEY = "test-ledger-key, not secret"
DSR_FULFILMENT_RETRY_SECONDS = 0
# A test-only app: models a `django` system of a test's data map searches (absent from a copy of
# the product's sources without tests/, such as the one the translations test extracts from).
if (BASE_DIR / "tests" / "support" / "shop" / "models.py").exists():  # noqa: F405
    INSTALLED_APPS = [*INSTALLED_APPS, "tests.support.shop"]  # noqa: F405
