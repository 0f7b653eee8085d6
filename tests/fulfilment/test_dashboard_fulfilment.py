"""Fulfilment on the dashboard: the request page's search panel (progress, each system, buttons by
permission), and the data map page with each system's health."""

import pytest

from dsr.fulfilment.models import FulfilmentRun, SystemHealth, SystemRun, SystemStatus
from dsr.fulfilment.services import runs
from dsr.services.audit import Actor
from tests.factories import officer_create
from tests.fulfilment.conftest import verified_request
from tests.fulfilment.test_runs import BEHAVIOUR, _run_queued, fake_systems  # noqa: F401 - the fixture

PASSWORD = "correct horse battery"


@pytest.fixture
def officer_client(client, officer):
    client.login(username=officer.username, password=PASSWORD)
    return client


@pytest.fixture
def reviewer_client(client, db):
    reviewer = officer_create(username="rita", email="rita@company.example", role="reviewer")
    client.login(username=reviewer.username, password=PASSWORD)
    return client


def test_the_officer_starts_the_search_from_the_request_page_and_sees_each_system(
    officer,
    officer_client,
    fake_systems,
    django_capture_on_commit_callbacks,  # noqa: F811
):
    req = verified_request(officer=officer)
    page = officer_client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert "Search across the systems" in page and "Search the systems now" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = officer_client.post(f"/dashboard/fulfilment/requests/{req.reference}/start/")
    assert response.status_code == 302
    assert FulfilmentRun.objects.filter(request=req).count() == 1
    page = officer_client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert "Search the systems: done." in page
    assert 'max="2" value="0"' in page and "Queued" in page
    assert "js/fulfilment-progress" in page  # kept current while it runs
    BEHAVIOUR["beta"] = ["fail"]
    _run_queued(fake_systems["queued"], django_capture_on_commit_callbacks)
    page = officer_client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert 'max="2" value="2"' in page
    assert "people: 1, things: 1" in page
    assert "beta refused the connection" in page and ">Retry<" in page and "Ask its owner" in page
    # The search failed in part: the officer may still package what answered.
    assert "Build the package now with what has answered" in page


def test_a_systems_error_is_shown_as_text(officer, officer_client, fake_systems, django_capture_on_commit_callbacks):  # noqa: F811
    req = verified_request(officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    SystemRun.objects.filter(run=run, system="alpha").update(
        status=SystemStatus.FAILED, error="<script>alert(1)</script>"
    )
    page = officer_client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_reviewer_sees_progress_but_no_buttons_and_cannot_start(officer, reviewer_client, fake_systems):  # noqa: F811
    req = verified_request(officer=officer)
    page = reviewer_client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert "Search across the systems" in page and "Search the systems now" not in page
    assert reviewer_client.post(f"/dashboard/fulfilment/requests/{req.reference}/start/").status_code == 403
    assert reviewer_client.get(f"/dashboard/fulfilment/requests/{req.reference}/package/").status_code == 403
    assert not FulfilmentRun.objects.exists()


def test_requests_that_are_not_searched_have_no_panel(officer, officer_client, fake_systems):  # noqa: F811
    req = verified_request(officer=officer, request_type="rectification")
    assert (
        "Search across the systems" not in officer_client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    )


def test_the_data_map_page_lists_systems_owners_categories_and_health(officer_client, fake_systems):  # noqa: F811
    page = officer_client.get("/dashboard/fulfilment/systems/").content.decode()
    assert "alpha@example.com" in page and "beta@example.com" in page
    assert "Identifiers (name, email address" in page  # the category's label, not its slug
    assert "not checked yet" in page
    response = officer_client.post("/dashboard/fulfilment/systems/check/")
    assert response.status_code == 302
    assert SystemHealth.objects.get(system="alpha").ok and not SystemHealth.objects.get(system="beta").ok
    page = officer_client.get("/dashboard/fulfilment/systems/").content.decode()
    assert "Health check: 1 of 2 systems answer; failing: beta." in page and "refused" in page


def test_a_reviewer_reads_the_map_but_cannot_run_the_checks(reviewer_client, fake_systems):  # noqa: F811
    assert reviewer_client.get("/dashboard/fulfilment/systems/").status_code == 200
    assert reviewer_client.post("/dashboard/fulfilment/systems/check/").status_code == 403
    assert not SystemHealth.objects.exists()


def test_a_map_that_does_not_load_is_shown_with_the_place(officer_client, fake_systems):  # noqa: F811
    fake_systems["path"].write_text("systems:\n  - name: alpha\n    owner: nobody\n")
    response = officer_client.get("/dashboard/fulfilment/systems/")
    assert response.status_code == 500
    assert "system &#x27;alpha&#x27;: owner &#x27;nobody&#x27; is not an email address" in response.content.decode()
