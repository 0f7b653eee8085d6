"""Fuzzing the API from its own OpenAPI schema (schemathesis): whatever a client sends — valid,
malformed, hostile — no endpoint answers with a server error, and every refusal is a problem
response. Runs in process through the WSGI application, on the test database (PostgreSQL in CI).

Examples per operation: DSR_FUZZ_EXAMPLES (default 40; CI runs 100; raise it for a longer hunt)."""

import json
import os
import zlib

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings as hypothesis_settings

from tests.factories import officer_create, request_create, staff_token_key

EXAMPLES = int(os.environ.get("DSR_FUZZ_EXAMPLES", "40"))

app = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", app)


@pytest.fixture
def _connections_kept():
    """Calls go straight to the WSGI application, not through Django's test client, so the
    end-of-request signal would close the database connection that holds the test's transaction
    (as Django's own test client prevents)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_world(db, _connections_kept):
    """An officer with a token, and requests in several states for the path parameters."""
    officer = officer_create(username="fuzz-officer", email="fuzz@company.example")
    references = [
        request_create(email="fuzz1@example.org").reference,
        request_create(request_type="erasure", regime="gdpr", email="fuzz2@example.org").reference,
        request_create(request_type="opt_out_sale", email="fuzz3@example.org").reference,
    ]
    return {"token": staff_token_key(officer), "references": references}


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_error(case, fuzz_world):
    if case.path_parameters and "reference" in case.path_parameters:
        # Half the cases address a real request, so the actions' own validation is reached too.
        digest = zlib.crc32(repr((case.body, case.query)).encode())
        if digest % 2:
            case.path_parameters["reference"] = fuzz_world["references"][digest % len(fuzz_world["references"])]
    response = case.call(headers={"Authorization": f"Token {fuzz_world['token']}"})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:500]}"
    )
    if response.status_code >= 400:
        content_type = (response.headers.get("content-type") or [""])[0]  # lower-case keys, list values
        assert content_type.startswith("application/problem+json"), f"{response.status_code} as {content_type}"
        body = json.loads(response.text)
        assert body["status"] == response.status_code and body["detail"]
