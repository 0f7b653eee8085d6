"""Who reaches the staff API: every staff route and method, for every kind of caller. A session needs
the second factor exactly as the dashboard does; an API token is its own credential."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from dsr.api import urls as api_urls
from tests.factories import officer_create, request_create, staff_token_key, totp_device_create
from tests.support.otp import totp_code

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
PUBLIC_ROUTES = {"requests/"}


def _methods(callback) -> list[str]:
    # A ViewSet's route serves the methods of its action map; another view, those its class has.
    actions = getattr(callback, "actions", None)
    methods = [
        m
        for m in ("get", "post", "put", "patch", "delete")
        if (m in actions if actions is not None else hasattr(callback.view_class, m))
    ]
    if "get" in methods:
        methods.append("head")
    return [*methods, "options"]


def _staff_routes() -> list[tuple[str, str]]:
    routes = []
    for pattern in api_urls.urlpatterns:
        route = str(pattern.pattern)
        if route in PUBLIC_ROUTES:
            continue
        for method in _methods(pattern.callback):
            routes.append((pattern.name, method))
    return routes


STAFF_ROUTES = _staff_routes()


def test_every_api_route_is_either_the_public_intake_or_a_staff_route():
    # A new route must be public on purpose (listed above) or fall under the staff rules tested here.
    routes = {str(p.pattern) for p in api_urls.urlpatterns}
    assert {r for r in routes if not r.startswith("staff/")} == PUBLIC_ROUTES
    assert len(STAFF_ROUTES) >= 15  # list+create, detail and every action, each with its methods


def _session(user, *, second_factor: bool) -> APIClient:
    """Sign in through the real pages: the password, then (if asked) the TOTP code."""
    client = APIClient()
    assert client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 302
    if second_factor:
        device = totp_device_create(user=user)
        assert client.post("/accounts/otp/", {"token": totp_code(device), "next": "/dashboard/"}).status_code == 302
    return client


def _token(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_key(user)}")
    return client


def _call(client, name, method, reference):
    view_kwargs = (
        {"reference": reference}
        if "reference" in next(p for p in api_urls.urlpatterns if p.name == name).pattern.converters
        else {}
    )
    return (
        getattr(client, method)(reverse(f"api:{name}", kwargs=view_kwargs), {}, format="json")
        if method in ("post", "put", "patch")
        else getattr(client, method)(reverse(f"api:{name}", kwargs=view_kwargs))
    )


def _problem(res, status):
    assert res.status_code == status, (res.status_code, res.content)
    if res.request["REQUEST_METHOD"] != "HEAD":
        assert res["Content-Type"].startswith("application/problem+json")
        assert res.json()["status"] == status
    return res


@pytest.fixture
def world(settings):
    settings.DSR_REQUIRE_2FA = True
    officer = officer_create(username="olivia", email="olivia@company.example")
    reviewer = officer_create(username="rob", email="rob@company.example", role="reviewer")
    return {"officer": officer, "reviewer": reviewer, "reference": request_create().reference}


@pytest.mark.parametrize("name,method", STAFF_ROUTES)
def test_anonymous_gets_401(world, name, method):
    _problem(_call(APIClient(), name, method, world["reference"]), 401)


@pytest.mark.parametrize("name,method", STAFF_ROUTES)
def test_password_only_session_is_told_a_second_factor_is_needed(world, name, method):
    res = _problem(_call(_session(world["officer"], second_factor=False), name, method, world["reference"]), 403)
    if method != "head":
        assert "second factor" in res.json()["detail"]
        assert res.json()["type"].endswith("/second_factor_required")


@pytest.mark.parametrize("name,method", STAFF_ROUTES)
def test_session_with_second_factor_gets_through(world, name, method):
    res = _call(_session(world["officer"], second_factor=True), name, method, world["reference"])
    assert res.status_code not in (401, 403) and res.status_code < 500, (res.status_code, res.content)


# Routes a reviewer may read (they hold no personal data: the suppression list is hashes).
READER_ROUTES = {"suppressions", "suppressions-csv", "suppressions-check"}


@pytest.mark.parametrize("name,method", [r for r in STAFF_ROUTES if r[0] not in READER_ROUTES])
def test_reviewer_is_refused_with_or_without_second_factor_or_by_token(world, name, method):
    for client in (_session(world["reviewer"], second_factor=True), _token(world["reviewer"])):
        _problem(_call(client, name, method, world["reference"]), 403)


@pytest.mark.parametrize("name,method", [r for r in STAFF_ROUTES if r[0] in READER_ROUTES])
def test_reviewer_reads_the_suppression_list_with_the_second_factor_or_a_token(world, name, method):
    for client in (_session(world["reviewer"], second_factor=True), _token(world["reviewer"])):
        res = _call(client, name, method, world["reference"])
        assert res.status_code not in (401, 403) and res.status_code < 500, (res.status_code, res.content)
    _problem(_call(_session(world["reviewer"], second_factor=False), name, method, world["reference"]), 403)


@pytest.mark.parametrize("name,method", STAFF_ROUTES)
def test_officer_token_is_its_own_credential(world, name, method):
    res = _call(_token(world["officer"]), name, method, world["reference"])
    assert res.status_code not in (401, 403) and res.status_code < 500, (res.status_code, res.content)


def test_without_2fa_required_a_password_session_is_enough(world, settings):
    settings.DSR_REQUIRE_2FA = False
    res = _session(world["officer"], second_factor=False).get(reverse("api:staff-requests"))
    assert res.status_code == 200
