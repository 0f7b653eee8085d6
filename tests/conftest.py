import os
import shutil

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import officer_create

REQUIRE_SERVICES = os.environ.get("DSR_REQUIRE_SERVICES") == "1"


def _missing(what: str):
    """Without the real service a test skips locally; in CI (DSR_REQUIRE_SERVICES=1) it fails."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required here (DSR_REQUIRE_SERVICES=1) but is not available")
    pytest.skip(f"{what} not available")


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
        _missing("PostgreSQL (DATABASE_URL)")
    if request.node.get_closest_marker("redis") and not os.environ.get("REDIS_URL"):
        _missing("Redis (REDIS_URL)")
    if request.node.get_closest_marker("browser"):
        if not (os.environ.get("DSR_CHROMIUM") or shutil.which("chromium")):
            _missing("Chromium")


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

