"""Settings shared by every environment, read from environment variables (README lists every one
with its default). DJANGO_SETTINGS_MODULE picks the environment: config.settings.run (`make run`),
.production (the image, docker-compose) or .test (pytest); each adds the keys and little else.

With no variables set: SQLite under var/, Celery on kombu's filesystem transport, sent mail as
files under var/mail/. DATABASE_URL, REDIS_URL and ANYMAIL_ESP switch to the production set-up.
Loading settings writes nothing: `python -m config.var_init` (make run) prepares var/.
"""

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("DSR_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# SECRET_KEY (DJANGO_SECRET_KEY) and the audit key (DSR_AUDIT_KEY) are set by each environment's
# module: production requires them from the environment, run mode also reads var/, tests fix them.

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("DSR_SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "anymail",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "dsr",
    "dsr.fulfilment",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "dsr.middleware.NoStoreMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "dsr.context_processors.business",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
# SQLite in run mode, shared by the web server and the Celery worker: WAL lets readers and the one
# writer work at once, IMMEDIATE transactions take the write lock up front and the busy timeout
# waits for it, so nothing fails with "database is locked".
_sqlite_path = VAR_DIR / "dsr.sqlite3"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{_sqlite_path}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Caches (rate limits, throttles) --------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # Short timeouts: an unreachable Redis must cost a request milliseconds, not minutes (the rate
    # limits then count in memory, see dsr.ratelimit).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Auth -----------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
SESSION_COOKIE_AGE = env.int("DSR_SESSION_SECONDS", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
LOGIN_REDIRECT_URL = "/dashboard/"
# Staff sign in with a second factor (TOTP) unless this is switched off (run mode's default, for the demo).
DSR_REQUIRE_2FA = env.bool("DSR_REQUIRE_2FA", default=True)
OTP_TOTP_ISSUER = env.str("DSR_BUSINESS_NAME", default="Example Company") + " privacy"

# --- Internationalisation -------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("sv", "Svenska"), ("nl", "Nederlands")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"

# --- Static files (vendored; never a CDN) ---------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Security (production behaviour is switched by environment variables) -------------------------
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("DSR_BEHIND_TLS_PROXY", default=False) else None
)
SESSION_COOKIE_SECURE = env.bool("DSR_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
# Served only over HTTPS: redirect plain http, and tell browsers so (HSTS) for this many seconds.
SECURE_SSL_REDIRECT = env.bool("DSR_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("DSR_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DSR_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DSR_HSTS_PRELOAD", default=False)
# Content-Security-Policy (django-csp): scripts, styles, images and fonts from this site only; no
# inline script or style anywhere (the API docs' Swagger UI is served the same way, see config/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    },
}

# --- Audit trail ---------------------------------------------------------------------------------
# Each event is chained with HMAC-SHA256 under DSR_AUDIT_KEY, which is never stored in the database:
# whoever can write to the database cannot recompute the chain. Events record the key's id; keys
# retired after a rotation stay in DSR_AUDIT_RETIRED_KEYS ("id:key,id:key") to verify older events.
DSR_AUDIT_KEY_ID = env.str("DSR_AUDIT_KEY_ID", default="1")


def audit_keys(current_key: str) -> dict[str, str]:
    """DSR_AUDIT_KEYS: the retired keys and, under DSR_AUDIT_KEY_ID, the current one (DSR_AUDIT_KEY,
    which each environment's module reads)."""
    return {
        **dict(item.split(":", 1) for item in env.list("DSR_AUDIT_RETIRED_KEYS", default=[])),
        DSR_AUDIT_KEY_ID: current_key,
    }


# dsr_verify_audit (and the daily beat task) writes signed checkpoints of every chain's head here,
# outside the database; put it on storage the database's administrators cannot write.
DSR_AUDIT_CHECKPOINT_DIR = Path(env.str("DSR_AUDIT_CHECKPOINT_DIR", default=str(VAR_DIR / "audit-checkpoints")))
# Who receives each checkpoint (and any failed verification) by email, e.g. the DPO; empty: no mail.
DSR_AUDIT_CHECKPOINT_EMAILS = env.list("DSR_AUDIT_CHECKPOINT_EMAILS", default=[])

# --- REST API -------------------------------------------------------------------------------------
# Staff API tokens (django-rest-knox with dsr.ApiToken): stored as digests, each expiring after this
# many days unless created with another lifetime (1 to 365 days).
DSR_API_TOKEN_DAYS = env.int("DSR_API_TOKEN_DAYS", default=90)
KNOX_TOKEN_MODEL = "dsr.ApiToken"
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=DSR_API_TOKEN_DAYS),
    "TOKEN_PREFIX": "dsr_",  # recognisable in logs and by secret scanners
    "AUTH_HEADER_PREFIX": "Token",  # the header stays `Authorization: Token <key>`
    "AUTO_REFRESH": False,
}
# knox's own token table is never used (dsr.ApiToken replaces it); without this its migrations
# would create it anyway.
MIGRATION_MODULES = {"knox": None}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "dsr.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["dsr.api.permissions.IsPrivacyStaff"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "dsr.api.problems.problem_exception_handler",
    # JSON only, read with size and depth limits (dsr/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["dsr.api.parsers.LimitedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
# The largest API request body: room for every field at its longest, even \u-escaped.
DSR_API_MAX_BODY_BYTES = env.int("DSR_API_MAX_BODY_BYTES", default=262144)
SPECTACULAR_SETTINGS = {
    "TITLE": "DSR API",
    "DESCRIPTION": "Data-subject requests under GDPR and CCPA: intake, clocks, actions, audit trail.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "ENUM_NAME_OVERRIDES": {
        "DenialReasonEnum": "dsr.models.DenialReason",
        "StatusEnum": "dsr.models.Status",
        "RequestTypeEnum": "dsr.models.RequestType",
        "SuppressionScopeEnum": "dsr.models.SuppressionScope",
        "SuppressionSourceEnum": "dsr.models.SuppressionSource",
    },
}

# --- Email ----------------------------------------------------------------------------------------
# ANYMAIL_ESP names an anymail backend ("mailgun", "postmark", "sendgrid", "amazon_ses", ...); its
# credentials come from ANYMAIL_* variables. DSR_SMTP_URL sends through plain SMTP (the compose
# file's mail catcher). With neither, mail is written as files under var/mail/.
ANYMAIL_ESP = env.str("ANYMAIL_ESP", default="")
DSR_SMTP_URL = env.str("DSR_SMTP_URL", default="")
if ANYMAIL_ESP:
    EMAIL_BACKEND = f"anymail.backends.{ANYMAIL_ESP}.EmailBackend"
    ANYMAIL = {
        key[len("ANYMAIL_") :]: value
        for key, value in env.ENVIRON.items()
        if key.startswith("ANYMAIL_") and key != "ANYMAIL_ESP"
    }
elif DSR_SMTP_URL:
    _smtp = env.email_url("DSR_SMTP_URL")
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = _smtp["EMAIL_HOST"]
    EMAIL_PORT = _smtp["EMAIL_PORT"]
    EMAIL_HOST_USER = _smtp.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = _smtp.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = _smtp.get("EMAIL_USE_TLS", False)
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env.str("DSR_FROM_EMAIL", default="privacy@example.com")
EMAIL_TIMEOUT = 30

# --- Celery ---------------------------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # An unreachable broker must cost a request half a second, not minutes: short socket
    # timeouts (without them a publish to a hung Redis waits forever) and one quick retry; the
    # email row stays queued and the outbox redispatch hands it over when the broker is back.
    CELERY_BROKER_CONNECTION_TIMEOUT = 0.5
    # visibility_timeout: kombu's default, stated because the task time limits below stay under it.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, float | str] = {
        "socket_connect_timeout": 0.5,
        "socket_timeout": 0.5,
        "visibility_timeout": 3600,
    }
    CELERY_TASK_PUBLISH_RETRY_POLICY = {
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.1,
        "interval_max": 0.1,
    }
else:
    # The folders are made by `python -m config.var_init` (make run), not here.
    CELERY_BROKER_URL = "filesystem://"
    _queue_dir = VAR_DIR / "celery" / "queue"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "control_folder": str(VAR_DIR / "celery" / "control"),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Every task ends: the soft limit raises SoftTimeLimitExceeded in it (a failed run, logged), the
# hard one kills it. The longest is the daily audit check over every chain. Both stay well under
# Redis's visibility timeout (one hour), so a task still running is never handed to a second
# worker. email_send has shorter limits of its own, under its claim on the email row
# (DSR_EMAIL_LEASE_SECONDS, see dsr/tasks.py), so a send never outlives its lease.
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celery" / "beat-schedule")
CELERY_BEAT_SCHEDULE = {
    "deadline-sweep": {
        "task": "dsr.tasks.deadline_sweep",
        "schedule": timedelta(seconds=env.int("DSR_SWEEP_SECONDS", default=300)),
    },
    "retention-purge": {
        "task": "dsr.tasks.retention_purge_run",
        "schedule": timedelta(hours=24),
    },
    "outbox-redispatch": {
        "task": "dsr.tasks.outbox_redispatch_run",
        "schedule": timedelta(seconds=env.int("DSR_EMAIL_REDISPATCH_SECONDS", default=30)),
    },
    "audit-checkpoint": {
        "task": "dsr.tasks.audit_checkpoint_run",
        "schedule": timedelta(hours=24),
    },
    # Fulfilment: expired packages deleted, manual owners reminded, stalled systems retried, and
    # every system's health checked (dsr/fulfilment/tasks.py).
    "fulfilment-sweep": {
        "task": "dsr.fulfilment.tasks.fulfilment_sweep_run",
        "schedule": timedelta(seconds=env.int("DSR_FULFILMENT_SWEEP_SECONDS", default=300)),
    },
    "fulfilment-health": {
        "task": "dsr.fulfilment.tasks.systems_health_run",
        "schedule": timedelta(seconds=env.int("DSR_HEALTH_CHECK_SECONDS", default=3600)),
    },
}

# --- The product ----------------------------------------------------------------------------------
DSR_BUSINESS_NAME = env.str("DSR_BUSINESS_NAME", default="Example Company")
DSR_BUSINESS_CONTACT = env.str("DSR_BUSINESS_CONTACT", default="privacy@example.com")
# §7022: a business that sells or shares personal information offers the opt-out when it refuses
# a deletion.
DSR_BUSINESS_SELLS_OR_SHARES = env.bool("DSR_BUSINESS_SELLS_OR_SHARES", default=True)
# Deadlines are dates in the business's time zone (RULES.md §2).
DSR_TIME_ZONE = env.str("DSR_TIME_ZONE", default="America/Los_Angeles")
DSR_CCPA_HOLIDAYS = env.str("DSR_CCPA_HOLIDAYS", default="US-CA")
DSR_GDPR_HOLIDAYS = env.str("DSR_GDPR_HOLIDAYS", default="")
# EDPB ¶159 (check): the GDPR clock may pause while waiting for identity information. Off by default.
DSR_GDPR_PAUSE_ENABLED = env.bool("DSR_GDPR_PAUSE_ENABLED", default=False)
# The sweep reminds the privacy team this many days before a response deadline.
DSR_REMINDER_DAYS = env.int("DSR_REMINDER_DAYS", default=7)
# Who hears about reminders and escalations (comma-separated); empty: every active privacy officer.
DSR_ESCALATION_EMAILS = env.list("DSR_ESCALATION_EMAILS", default=[])
DSR_EMAIL_MAX_ATTEMPTS = env.int("DSR_EMAIL_MAX_ATTEMPTS", default=5)
# Days a one-click unsubscribe link works (CAN-SPAM: at least 30 after sending; people unsubscribe
# from mail months old, so a year by default).
DSR_UNSUBSCRIBE_DAYS = env.int("DSR_UNSUBSCRIBE_DAYS", default=365)
# The suppression list (dsr.services.suppression) holds HMAC-SHA256 hashes of addresses under this
# key, never the addresses. Kept outside the database; changing it orphans every hash on the list.
DSR_SUPPRESSION_KEY = env.str("DSR_SUPPRESSION_KEY", default="")
# A sender claims an email row for this long; a claim left by a worker that died expires and the
# row is sent again (only that message can go out twice). Longer than any send takes.
DSR_EMAIL_LEASE_SECONDS = env.int("DSR_EMAIL_LEASE_SECONDS", default=180)
# Rows whose task is this overdue (broker down, task lost) are handed over again; beat runs the
# redispatch this often, so a stranded email goes out about a minute after the broker is back.
DSR_EMAIL_REDISPATCH_SECONDS = env.int("DSR_EMAIL_REDISPATCH_SECONDS", default=30)
# Retention (§7101): request records, events and emails are kept this long after closing, then
# purged, keeping only anonymous figures for the metrics. Identity documents go much sooner: at the
# decision, and at the latest after DSR_ID_DOCUMENT_MAX_DAYS.
DSR_RETENTION_MONTHS = env.int("DSR_RETENTION_MONTHS", default=24)
DSR_ID_DOCUMENT_MAX_DAYS = env.int("DSR_ID_DOCUMENT_MAX_DAYS", default=30)
# Rate limits ("N/second|minute|hour|day"), each set with DSR_RATE_<SCOPE>, e.g. DSR_RATE_FORM_IP=20/hour;
# the API's intake limit per client is DSR_INTAKE_RATE. Sign-in limits count failures only (see
# dsr.auth_views): login_user is a ceiling per username that slows unknown clients, never a lock-out.
DSR_RATE_LIMITS = {
    scope: env.str(f"DSR_RATE_{scope.upper()}", default=default)
    for scope, default in {
        "form_ip": "20/hour",
        "form_email": "5/hour",
        "verify_ip": "30/hour",
        "resend_request": "3/hour",
        "login_ip": "30/hour",
        "login_user_ip": "10/hour",
        "login_user": "100/hour",
        "otp_user_ip": "5/hour",
        "password_reset_ip": "10/hour",
        "password_reset_email": "3/hour",
        # The access package on the status page: codes typed and downloads per client, codes sent per request.
        "package_ip": "30/hour",
        "package_code": "5/hour",
        # Fulfilment: http systems' callbacks, and manual owners' task pages (by client address).
        "callback_ip": "600/minute",
        "task_ip": "60/minute",
    }.items()
}
DSR_RATE_LIMITS["intake"] = env.str("DSR_INTAKE_RATE", default="30/hour")
# Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For is believed; empty: the client is
# the socket peer and forwarding headers are ignored (dsr.ratelimit.client_ip).
DSR_TRUSTED_PROXIES = env.list("DSR_TRUSTED_PROXIES", default=[])
for _proxy in DSR_TRUSTED_PROXIES:  # a typo must stop the start, not put every client in one bucket
    try:
        ipaddress.ip_network(_proxy.strip(), strict=False)
    except ValueError:
        raise environ.ImproperlyConfigured(f"DSR_TRUSTED_PROXIES: {_proxy!r} is not an IP address or network") from None
# Uploaded documents: private, never under a served URL.
DSR_PRIVATE_FILES_DIR = Path(env.str("DSR_PRIVATE_FILES_DIR", default=str(VAR_DIR / "private")))
DSR_UPLOAD_MAX_BYTES = env.int("DSR_UPLOAD_MAX_BYTES", default=5 * 1024 * 1024)
# Identity verification (RULES.md §3).
DSR_IDENTITY_PROVIDER = env.str("DSR_IDENTITY_PROVIDER", default="dsr.identity.DemoCustomerProvider")
DSR_VERIFY_LINK_HOURS = env.int("DSR_VERIFY_LINK_HOURS", default=72)
DSR_VERIFY_MAX_ATTEMPTS = env.int("DSR_VERIFY_MAX_ATTEMPTS", default=5)
# Failed identity-detail checks per request before automatic matching stops and the team reviews it.
DSR_IDENTITY_MAX_ATTEMPTS = env.int("DSR_IDENTITY_MAX_ATTEMPTS", default=5)
DSR_VERIFY_REMIND_DAYS = env.int("DSR_VERIFY_REMIND_DAYS", default=3)
# Unverified requests are closed as unverifiable after this many days (never later than the
# response deadline: CCPA allows denial at day 45).
DSR_VERIFY_EXPIRE_DAYS = env.int("DSR_VERIFY_EXPIRE_DAYS", default=21)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}

# --- Fulfilment (dsr/fulfilment/) -----------------------------------------------------------------
# The data map: where the business keeps personal data (README "The data map"). The default is the
# demo map `make run` uses; a deployment points this at its own reviewed file.
DSR_DATAMAP = env.str("DSR_DATAMAP", default=str(BASE_DIR / "config" / "datamap.yaml"))
# Start the search when a verified access or portability request is approved (else the officer
# starts it from the request's page or the API).
DSR_FULFILMENT_AUTO_START = env.bool("DSR_FULFILMENT_AUTO_START", default=True)
# A failing system is retried this many times, after 30 s, 60 s, 120 s … (capped at 15 minutes).
DSR_FULFILMENT_RETRIES = env.int("DSR_FULFILMENT_RETRIES", default=3)
DSR_FULFILMENT_RETRY_SECONDS = env.int("DSR_FULFILMENT_RETRY_SECONDS", default=30)
# A system task claims its system for this long; a redelivered copy inside it does nothing.
DSR_FULFILMENT_LEASE_SECONDS = env.int("DSR_FULFILMENT_LEASE_SECONDS", default=600)
# Access packages: kept this many days, downloaded at most this many times by the requester, each
# download after a fresh emailed code (valid DSR_PACKAGE_CODE_MINUTES; the download it opens, for
# DSR_PACKAGE_GRANT_MINUTES). Encrypted at rest under DSR_PACKAGE_KEY, which is never in the database.
DSR_PACKAGE_DAYS = env.int("DSR_PACKAGE_DAYS", default=30)
DSR_PACKAGE_MAX_DOWNLOADS = env.int("DSR_PACKAGE_MAX_DOWNLOADS", default=5)
DSR_PACKAGE_CODE_MINUTES = env.int("DSR_PACKAGE_CODE_MINUTES", default=15)
DSR_PACKAGE_GRANT_MINUTES = env.int("DSR_PACKAGE_GRANT_MINUTES", default=10)
# Wrong codes allowed before a new code must be sent.
DSR_PACKAGE_CODE_ATTEMPTS = env.int("DSR_PACKAGE_CODE_ATTEMPTS", default=5)
# After the requester's access ends (DSR_PACKAGE_DAYS) the encrypted file is kept this many days so
# staff can re-issue it without searching again; then the sweep deletes it.
DSR_PACKAGE_REISSUE_DAYS = env.int("DSR_PACKAGE_REISSUE_DAYS", default=30)
DSR_PACKAGE_KEY = env.str("DSR_PACKAGE_KEY", default="")
# Erasure's `hash` strategy: the HMAC-SHA256 key (kept outside the database, so a hashed value
# cannot be reversed by trying addresses; the same key keeps joins working). Run mode derives one
# from the secret key; production must set it, else a `hash` strategy refuses to plan.
DSR_ERASURE_HASH_KEY = env.str("DSR_ERASURE_HASH_KEY", default="")
# HTTP systems: a request older than this (seconds) or seen before is refused (replay).
DSR_HTTP_SIGNATURE_MAX_AGE = env.int("DSR_HTTP_SIGNATURE_MAX_AGE", default=300)
# The largest answer read from an http system, inline or on its callback (bytes).
DSR_HTTP_MAX_BYTES = env.int("DSR_HTTP_MAX_BYTES", default=50 * 1024 * 1024)
# Personal data goes to http systems over https only; plain http only to loopback unless this is set
# (a processor inside a private network).
DSR_HTTP_ALLOW_PLAIN = env.bool("DSR_HTTP_ALLOW_PLAIN", default=False)
# Manual systems: the owner is reminded after this many days without an answer.
DSR_MANUAL_REMIND_DAYS = env.int("DSR_MANUAL_REMIND_DAYS", default=3)
# The demo processor (an HTTP system served by the product itself, /demo/processor/): run mode only.
DSR_DEMO_SYSTEMS = env.bool("DSR_DEMO_SYSTEMS", default=False)
# Erasure: a plan is executed once one officer approves it, or two different officers when this is on.
DSR_ERASURE_FOUR_EYES = env.bool("DSR_ERASURE_FOUR_EYES", default=False)
# The cool-off: an approved erasure runs this many hours later (the requester may cancel it from
# their status page meanwhile); it always starts early enough to end before the legal deadline.
DSR_ERASURE_DELAY_HOURS = env.int("DSR_ERASURE_DELAY_HOURS", default=0)
# An http system told what to do and silent this long is told once more, then the team is told.
DSR_INSTRUCTION_WAIT_HOURS = env.int("DSR_INSTRUCTION_WAIT_HOURS", default=48)
# The erasure ledger keeps keyed HMACs of identities under this key (never in the database), so a
# restored backup can be erased again (`manage.py dsr_erasure_replay`). Production requires it.
DSR_LEDGER_KEY = env.str("DSR_LEDGER_KEY", default="")
