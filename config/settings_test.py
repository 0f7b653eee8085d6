"""Test settings: the same as production but for what a test must control. DATABASE_URL and
REDIS_URL still choose real PostgreSQL and Redis when set (CI sets them)."""

from .settings import *  # noqa: F401,F403
from .settings import DSR_RATE_LIMITS

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SITE_URL = "http://testserver"
DSR_ESCALATION_EMAILS = []
WHITENOISE_AUTOREFRESH = True
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405 - threads in tests must not keep sessions open
DSR_RATE_LIMITS = {scope: "1000/minute" for scope in DSR_RATE_LIMITS}  # tests set the rate they check
DSR_REQUIRE_2FA = False
# A fixed audit key, so tests can recompute (and forge) what an attacker could.
DSR_AUDIT_KEY_ID = "test"
DSR_AUDIT_KEYS = {"test": "test-audit-key, not secret"}
