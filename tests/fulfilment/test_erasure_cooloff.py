"""The cool-off (DSR_ERASURE_DELAY_HOURS): an approved erasure waits (a countdown, and the sweep
runs any task lost meanwhile once it is due), never past the latest start the legal deadline
allows (clamped, and the timeline says so); meanwhile the requester sees on their status page, in
their language, when their data will be deleted and may cancel it — nothing is erased, the request
is cancelled through the status door — and nobody else can; the officer's page shows the countdown."""

import re
from datetime import datetime, timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from dsr.event_types import EventType
from dsr.fulfilment.models import RunState, SystemStatus
from dsr.fulfilment.services import erasure, runs, sweep
from dsr.models import OutboundEmail
from dsr.services.audit import Actor
from tests.fulfilment import erasure_fakes as fakes
from tests.fulfilment.conftest import verified_request
from tests.fulfilment.erasure_fakes import erasing_only, run_queued  # noqa: F401

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


def _events(req, kind):
    return [e for e in req.events.all() if e.event_type == kind]


def _approved(officer, queued, capture, **kwargs):
    req = verified_request(officer=officer, request_type="erasure", **kwargs)
    with capture(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    run_queued(queued, capture)
    with capture(execute=True):
        erasure.erasure_approve(request=req, actor=Actor.staff(officer), user_id=officer.pk)
    run.refresh_from_db()
    return req, run


def test_without_a_cool_off_the_erasure_runs_at_once(officer, erasing_only, django_capture_on_commit_callbacks):
    req, run = _approved(officer, erasing_only, django_capture_on_commit_callbacks)
    assert run.erase_after is None and erasing_only["countdowns"] == [0, 0]
    assert _events(req, EventType.ERASURE_SCHEDULED) == []
    run_queued(erasing_only, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RunState.DONE and sorted(fakes.ERASE_CALLS) == ["alpha", "beta"]


def test_the_erasure_waits_for_the_cool_off_and_the_sweep_runs_it_when_due(
    officer, erasing_only, settings, django_capture_on_commit_callbacks
):
    settings.DSR_ERASURE_DELAY_HOURS = 48
    before = timezone.now()
    req, run = _approved(officer, erasing_only, django_capture_on_commit_callbacks)
    assert before + timedelta(hours=48) <= run.erase_after <= timezone.now() + timedelta(hours=48)
    # The tasks wait 48 hours (a countdown), and one that runs early does nothing.
    assert all(47.9 * 3600 < c <= 48 * 3600 for c in erasing_only["countdowns"])
    [scheduled] = _events(req, EventType.ERASURE_SCHEDULED)
    assert scheduled.data["clamped"] is False and scheduled.data["delay_hours"] == 48
    run_queued(erasing_only, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert fakes.ERASE_CALLS == [] and run.state == RunState.RUNNING
    assert set(run.systems.values_list("status", flat=True)) == {SystemStatus.PLANNED}
    # Still in the cool-off: the sweep leaves it alone.
    with time_machine.travel(run.erase_after - timedelta(minutes=1), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            sweep.systems_stalled_requeue()
    assert erasing_only["erase"] == []
    # The countdown's tasks were lost (a broker restart): once due, the sweep queues them again.
    with time_machine.travel(run.erase_after + timedelta(minutes=3), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert sweep.systems_stalled_requeue() == 2
        run_queued(erasing_only, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RunState.DONE and sorted(fakes.ERASE_CALLS) == ["alpha", "beta"]


def test_the_cool_off_is_clamped_to_end_before_the_deadline(
    officer, erasing_only, settings, django_capture_on_commit_callbacks
):
    settings.DSR_ERASURE_DELAY_HOURS = 24 * 60  # sixty days: far past the deadline
    req, run = _approved(officer, erasing_only, django_capture_on_commit_callbacks)
    latest = erasure.erase_latest_start(run.due_date)
    assert run.erase_after == latest and latest < timezone.now() + timedelta(days=60)
    assert timezone.localdate(latest) < run.due_date  # it starts a day before the due date
    [scheduled] = _events(req, EventType.ERASURE_SCHEDULED)
    assert scheduled.data["clamped"] is True and scheduled.data["latest_start"] == latest.isoformat()
    assert abs(erasing_only["countdowns"][0] - (latest - timezone.now()).total_seconds()) < 60


def test_a_deadline_already_too_close_starts_the_erasure_now(
    officer, erasing_only, settings, django_capture_on_commit_callbacks
):
    settings.DSR_ERASURE_DELAY_HOURS = 48
    req = verified_request(officer=officer, request_type="erasure")
    type(req).objects.filter(pk=req.pk).update(respond_by=timezone.localdate() + timedelta(days=1))
    req.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    run_queued(erasing_only, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        erasure.erasure_approve(request=req, actor=Actor.staff(officer), user_id=officer.pk)
    run.refresh_from_db()
    assert run.erase_after <= timezone.now() and erasing_only["countdowns"] == [0, 0]
    assert _events(req, EventType.ERASURE_SCHEDULED)[0].data["clamped"] is True
    run_queued(erasing_only, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RunState.DONE


def _csrf(client, url):
    page = client.get(url).content.decode()
    return page, re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def test_the_requester_sees_when_and_cancels_in_their_language_and_nothing_is_erased(
    officer, erasing_only, settings, django_capture_on_commit_callbacks
):
    settings.DSR_ERASURE_DELAY_HOURS = 48
    req, run = _approved(officer, erasing_only, django_capture_on_commit_callbacks, language="sv")
    client = Client(enforce_csrf_checks=True)
    status_url = f"/r/{req.public_token}/"
    page, token = _csrf(client, status_url)
    assert "Radering av dina uppgifter" in page and "Avbryt raderingen" in page
    assert timezone.localtime(run.erase_after).strftime("%H:%M") in page
    # Without the CSRF token the cancel is refused and changes nothing.
    assert client.post(f"{status_url}erasure/cancel/").status_code == 403
    run.refresh_from_db()
    assert run.state == RunState.RUNNING
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(f"{status_url}erasure/cancel/", {"csrfmiddlewaretoken": token})
    assert answer.status_code == 302
    run.refresh_from_db()
    req.refresh_from_db()
    assert run.state == RunState.CANCELLED and req.status == "cancelled"
    [cancelled] = _events(req, EventType.ERASURE_CANCELLED)
    assert cancelled.actor_type == "requester" and cancelled.data["run"] == run.pk
    assert OutboundEmail.objects.filter(request=req, template="cancelled", language="sv").exists()
    page = client.get(status_url).content.decode()
    assert "Du avbröt raderingen. Ingenting raderades." in page and "Avbryt raderingen" not in page
    # The countdown's tasks, when they come, erase nothing.
    with time_machine.travel(run.erase_after + timedelta(minutes=3), tick=False):
        run_queued(erasing_only, django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            sweep.systems_stalled_requeue()
        run_queued(erasing_only, django_capture_on_commit_callbacks)
    assert fakes.ERASE_CALLS == [] and fakes.STORE["alpha"]["people"][1]["email"] == "bench1@example.com"


def test_another_requester_cannot_cancel_it_and_a_started_erasure_cannot_be_cancelled(
    officer, erasing_only, settings, django_capture_on_commit_callbacks
):
    settings.DSR_ERASURE_DELAY_HOURS = 48
    req, run = _approved(officer, erasing_only, django_capture_on_commit_callbacks)
    other = verified_request(officer=officer, request_type="erasure", email="someone.else@example.com")
    client = Client()
    # Someone else's status link reaches only their own request, which has nothing to cancel.
    answer = client.post(f"/r/{other.public_token}/erasure/cancel/")
    assert answer.status_code == 302
    assert "there is none to cancel" in client.get(f"/r/{other.public_token}/").content.decode()
    assert client.post("/r/not-a-real-token/erasure/cancel/").status_code == 404
    run.refresh_from_db()
    req.refresh_from_db()
    assert run.state == RunState.RUNNING and req.is_open and _events(req, EventType.ERASURE_CANCELLED) == []
    # Once the cool-off is over and the erasure ran, there is nothing left to cancel.
    with time_machine.travel(run.erase_after + timedelta(minutes=1), tick=False):
        run_queued(erasing_only, django_capture_on_commit_callbacks)
        erasing_only["erase"] += list(run.systems.values_list("pk", flat=True))
        run_queued(erasing_only, django_capture_on_commit_callbacks)
        assert "Avbryt" not in client.get(f"/r/{req.public_token}/").content.decode()
        answer = client.post(f"/r/{req.public_token}/erasure/cancel/")
    run.refresh_from_db()
    assert run.state == RunState.DONE and answer.status_code == 302


def test_the_officers_page_shows_the_countdown(officer, client, erasing_only, settings,
                                               django_capture_on_commit_callbacks):  # fmt: skip
    settings.DSR_ERASURE_DELAY_HOURS = 48
    req, run = _approved(officer, erasing_only, django_capture_on_commit_callbacks)
    client.login(username=officer.username, password=PASSWORD)
    page = client.get(f"/dashboard/requests/{req.reference}/").content.decode()
    assert 'data-erasure="cool-off"' in page and "the requester may cancel it" in page
    assert timezone.localtime(run.erase_after).strftime("%Y-%m-%d %H:%M") in page
    assert "1\xa0day" in page or "1 day" in page


def test_the_api_carries_when_the_erasure_runs_and_that_it_may_be_cancelled(
    officer, staff_api, erasing_only, settings, django_capture_on_commit_callbacks
):
    settings.DSR_ERASURE_DELAY_HOURS = 12
    req, run = _approved(officer, erasing_only, django_capture_on_commit_callbacks)
    plan = staff_api.get(f"/api/v1/staff/requests/{req.reference}/fulfilment/").json()["plan"]
    assert plan["cancellable"] is True
    assert datetime.fromisoformat(plan["erase_after"].replace("Z", "+00:00")) == run.erase_after
    with time_machine.travel(run.erase_after + timedelta(seconds=1), tick=False):
        plan = staff_api.get(f"/api/v1/staff/requests/{req.reference}/fulfilment/").json()["plan"]
    assert plan["cancellable"] is False
