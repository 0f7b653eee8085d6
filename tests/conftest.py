"""Fixtures for every test. Shared helpers live in tests/support/, test data is built by
tests/factories.py. Markers (pytest.ini): postgres, redis and browser tests skip without their
service, and fail instead under DSR_REQUIRE_SERVICES=1 (CI)."""

import os

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import officer_create
from tests.support.browser import CHROMIUM_ARGS, chromium_executable
from tests.support.services import REQUIRE_SERVICES, free_port, service_missing


@pytest.fixture(scope="session", autouse=True)
def _urlconf_loaded_under_the_test_settings():
    """config/urls.py chooses the admin site's class from DSR_REQUIRE_2FA when it is first imported:
    import it now, under the test settings, so that a test which turns the setting on does not
    decide for every later test how the admin behaves."""
    import config.urls  # noqa: F401


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    from dsr import ratelimit

    cache.clear()
    ratelimit._local_counts.clear()  # the counts kept while the shared cache is down
    ratelimit._shared_paused_until = 0.0
    yield


@pytest.fixture(autouse=True)
def _audit_checkpoints(settings, tmp_path):
    """Each test starts with no audit checkpoint (they are files, outside the test database)."""
    settings.DSR_AUDIT_CHECKPOINT_DIR = tmp_path / "audit-checkpoints"


@pytest.fixture(autouse=True)
def _broker_not_paused():
    """A test that made a publish fail must not leave the next one's emails unsent."""
    from dsr.services import emails

    emails._broker_paused_until = 0.0
    yield


@pytest.fixture(autouse=True)
def _english_by_default():
    from django.utils import translation

    translation.activate("en")
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _service_markers(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        service_missing("PostgreSQL (DATABASE_URL)")
    if request.node.get_closest_marker("redis") and not os.environ.get("REDIS_URL"):
        service_missing("Redis (REDIS_URL)")
    if request.node.get_closest_marker("browser") and not chromium_executable():
        service_missing("Chromium")


def pytest_deselected(items):
    """CI runs the browser tests: under DSR_REQUIRE_SERVICES=1 a -m expression may not leave them out."""
    if (
        REQUIRE_SERVICES
        and items
        and items[0].config.option.markexpr
        and any(i.get_closest_marker("browser") for i in items)
    ):
        pytest.exit(
            f"-m {items[0].config.option.markexpr!r} leaves out browser tests, which DSR_REQUIRE_SERVICES=1 runs",
            returncode=4,
        )


@pytest.fixture
def officer(db):
    return officer_create(username="olivia", email="olivia@company.example")


@pytest.fixture
def staff_api(officer):
    from tests.factories import staff_token_key

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_key(officer)}")
    return client


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def browser():
    """Debian's Chromium through Playwright (tests marked `browser`; tests/support/browser.py)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls in these tests are
    # made between browser steps, never concurrently with them.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        yield instance
        # ORM calls made while Playwright's loop runs get a connection of their own; close it
        # here, in the same context, so no session outlives the test database.
        from django.db import connections

        connections.close_all()
        instance.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def cache_unreachable(settings):
    """The shared cache on a Redis port nobody listens on, with the production client timeouts."""
    import redis
    from django.core.cache import cache

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    with pytest.raises(redis.exceptions.ConnectionError):
        cache.get("anything")  # the shared cache really is down
