"""A database that is away (a restart, a failover) answers 503 with Retry-After: a problem
response in the API, a page saying to try again on the HTML side — never an HTML 500."""

import pytest
from django.db import InterfaceError, OperationalError, connection
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from dsr.models import DataSubjectRequest
from tests.support.services import free_port, postgres_backend_terminate

pytestmark = pytest.mark.django_db

SUBMISSION = {
    "type": "access",
    "regime": "ccpa",
    "email": "db-away@example.org",
    "full_name": "Dee Bee",
    "language": "en",
}
FORM = {
    "request_type": "access",
    "regime": "ccpa",
    "relationship": "customer",
    "email": "db-away@example.org",
    "full_name": "Dee Bee",
    "access_period": "12_months",
}


def _assert_problem_503(res):
    assert res.status_code == 503, res.content[:300]
    assert res["Content-Type"].startswith("application/problem+json")
    assert int(res["Retry-After"]) > 0
    body = res.json()
    assert body["status"] == 503 and body["type"].endswith("/database_unavailable") and body["detail"]


def _assert_page_503(res):
    assert res.status_code == 503
    assert res["Content-Type"].startswith("text/html") and int(res["Retry-After"]) > 0
    assert "try again in a few minutes" in res.content.decode()


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_api_answers_a_problem_503_when_the_database_errors(monkeypatch, error):
    from dsr.services import intake

    def database_away(**kwargs):
        raise error("server closed the connection unexpectedly")

    monkeypatch.setattr(intake, "request_submit", database_away)
    _assert_problem_503(APIClient(raise_request_exception=False).post("/api/v1/requests/", SUBMISSION, format="json"))
    _assert_page_503(Client(raise_request_exception=False).post("/", FORM))


def test_errors_outside_the_api_view_keep_the_problem_shape():
    """The 500 handler: under /api/ a problem response (503 for the database, else 500)."""
    from dsr.views import server_error

    factory = RequestFactory()
    for exc, status in ((OperationalError("gone"), 503), (ValueError("bug"), 500)):
        try:
            raise exc
        except Exception:
            res = server_error(factory.post("/api/v1/requests/"))
        assert res.status_code == status and res["Content-Type"] == "application/problem+json"
    try:
        raise ValueError("bug")
    except ValueError:
        assert server_error(factory.get("/")).status_code == 500  # Django's own page for a real bug


@pytest.mark.postgres
def test_a_restarted_postgresql_gives_503s_not_html_500s(transactional_db):
    """Before: 34 of 385 API submissions during a restart got Django's HTML 500 page."""
    api = APIClient(raise_request_exception=False)
    postgres_backend_terminate()
    _assert_problem_503(api.post("/api/v1/requests/", SUBMISSION, format="json"))
    postgres_backend_terminate()
    _assert_page_503(Client(raise_request_exception=False).post("/", FORM))
    connection.close()
    assert DataSubjectRequest.objects.count() == 0
    # The database is back: the same submission goes through.
    assert api.post("/api/v1/requests/", SUBMISSION, format="json").status_code == 201


@pytest.mark.postgres
def test_a_stopped_postgresql_gives_503s(transactional_db, officer):
    from tests.factories import staff_token_key

    token = staff_token_key(officer)
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())
    try:
        api = APIClient(raise_request_exception=False)
        _assert_problem_503(api.post("/api/v1/requests/", SUBMISSION, format="json"))
        api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        _assert_problem_503(api.get("/api/v1/staff/requests/"))  # the token check itself needs the database
        _assert_page_503(Client(raise_request_exception=False).post("/", FORM))
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert DataSubjectRequest.objects.count() == 0
