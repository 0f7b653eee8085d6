"""Manual systems: the owner is emailed a private link (no account, no personal data in the
email); the page shows whom to search for and what; a CSV or JSON export per collection, or
"nothing held", answers the system through the run; a bad upload is refused with a specific
message and records nothing; a wrong link is a 404; owners who stay silent are reminded, and the
team is told when the due date is near; a failed system switched to its owner works the same."""

import json
import re
import textwrap
from datetime import timedelta

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from dsr.deadlines import business_today
from dsr.event_types import EventType
from dsr.fulfilment.models import ManualTask, RunState, SystemStatus
from dsr.fulfilment.results import result_records
from dsr.fulfilment.services import manual_tasks, runs
from dsr.models import OutboundEmail
from dsr.services.audit import Actor
from tests.fulfilment.conftest import verified_request
from tests.fulfilment.support_http import (  # noqa: F401  (fixtures)
    SECRET,
    SECRET_ENV,
    Reply,
    http_map,
    processor,
    queued,
    run_queued,
)

pytestmark = pytest.mark.django_db

MANUAL = """
  - name: crm
    description: The sales team's spreadsheet.
    owner: sales@example.com
    kind: manual
    connection:
      instructions: Search the "Leads" sheet for the email address.
      remind_days: 2
    collections:
      - name: leads
        primary_key: email
        identities: {email: email}
        dated_by: met_on
        fields:
          email: identifiers
          name: identifiers
          company: {category: professional_information, description: Where they work}
          met_on: professional_information
          notes: {category: professional_information, others_data: true}
      - name: calls
        primary_key: id
        identities: {email: email}
        fields: {id: none, email: identifiers, summary: professional_information}
"""

LEADS_CSV = (
    "email,name,company,met_on,notes\nbench1@example.com,Bench One,Acme,2026-10-02,Met with carol@other.example\n"
)


@pytest.fixture
def manual_system(settings, tmp_path, queued):
    path = tmp_path / "datamap.yaml"
    path.write_text("systems:" + textwrap.indent(MANUAL, ""))
    settings.DSR_DATAMAP = str(path)
    return path


def _start(officer, capture, queued):
    req = verified_request(officer=officer, full_name="Nora Namesake")
    with capture(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    run_queued(queued, capture)
    return req, run


def _link(message) -> str:
    [url] = re.findall(r"http://testserver(/fulfilment/task/[^/\s]+/)", message.body)
    return url


def _events(req, kind):
    return [e for e in req.events.all() if e.event_type == kind]


@pytest.fixture
def asked(officer, manual_system, queued, mailoutbox, django_capture_on_commit_callbacks):
    req, run = _start(officer, django_capture_on_commit_callbacks, queued)
    system_run = run.systems.get()
    [email] = [m for m in mailoutbox if m.to == ["sales@example.com"]]
    return {"req": req, "run": run, "system_run": system_run, "email": email, "url": _link(email)}


def test_the_owner_is_emailed_a_private_link_and_nothing_personal(asked):
    system_run, email = asked["system_run"], asked["email"]
    assert system_run.status == SystemStatus.WAITING_MANUAL
    task = ManualTask.objects.get(system_run=system_run)
    assert task.owner_email == "sales@example.com" and task.remind_on == business_today() + timedelta(days=2)
    assert asked["req"].reference in email.subject and "crm" in email.subject
    html = email.alternatives[0][0]
    assert f'href="http://testserver{asked["url"]}"' in html
    for part in (email.subject, email.body, html):
        assert "bench1@example.com" not in part and "Nora" not in part  # the identity is behind the link
    token = asked["url"].split("/")[-2]
    assert token not in task.token_digest and len(token) >= 32  # only a keyed digest is kept
    [requested] = _events(asked["req"], EventType.FULFILMENT_SYSTEM_REQUESTED)
    assert requested.data["note"] == f"asked sales@example.com on {business_today().isoformat()}"


def test_the_page_shows_what_to_search_for_and_is_private(client, asked):
    response = client.get(asked["url"])
    assert response.status_code == 200
    page = response.content.decode()
    for expected in (
        asked["req"].reference,
        "bench1@example.com",
        "Search the &quot;Leads&quot; sheet",
        "Fields of leads",
        "Where they work",
        "Fields of calls",
        asked["req"].respond_by.strftime("%Y-%m-%d"),
    ):
        assert expected in page, expected  # fmt: skip
    assert "Nora" not in page
    assert "no-store" in response["Cache-Control"]
    assert response["X-Robots-Tag"] == "noindex, nofollow" and response["Referrer-Policy"] == "same-origin"
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "<script" not in page and "style=" not in page  # CSP-clean, works without JavaScript
    assert 'enctype="multipart/form-data"' in page and 'name="file_leads"' in page


def test_a_wrong_token_is_404(client, asked):
    assert client.get("/fulfilment/task/not-a-real-token/").status_code == 404
    assert (
        client.post("/fulfilment/task/not-a-real-token/", {"answer": "nothing_held", "confirm": "yes"}).status_code
        == 404
    )
    asked["system_run"].refresh_from_db()
    assert asked["system_run"].status == SystemStatus.WAITING_MANUAL


def test_a_csv_upload_answers_the_system(client, asked, queued, django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile("leads.csv", LEADS_CSV.encode(), content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(asked["url"], {"answer": "records", "file_leads": upload})
    assert response.status_code == 200
    assert "Thank you: 1 records received." in response.content.decode()
    system_run = asked["system_run"]
    system_run.refresh_from_db()
    assert (system_run.status, system_run.records, system_run.counts) == (
        SystemStatus.DONE,
        1,
        {"leads": 1, "calls": 0},
    )
    [(collection, record)] = list(result_records(system_run.result_name))
    assert collection == "leads" and record["company"] == "Acme"
    assert record["notes"] == "Met with [redacted]"  # the record policy applies to uploads too (Art 15(4))
    [answered] = _events(asked["req"], EventType.FULFILMENT_MANUAL_ANSWERED)
    assert answered.data == {"run": asked["run"].pk, "system": "crm", "nothing_held": False, "records": 1}
    assert answered.actor_label == "sales@example.com"
    asked["run"].refresh_from_db()
    assert asked["run"].state == RunState.DONE and queued["package"] == [asked["run"].pk]
    # Afterwards the page says so, and a second answer is refused.
    page = client.get(asked["url"]).content.decode()
    assert "Answered" in page and "1 records received (leads: leads.csv)" in page and 'name="file_leads"' not in page
    again = client.post(asked["url"], {"answer": "nothing_held", "confirm": "yes"})
    assert again.status_code == 400 and "already been answered" in again.content.decode()


def test_a_json_upload_with_semicolon_csv_alongside(client, asked, django_capture_on_commit_callbacks):
    leads = json.dumps(
        [{"email": "bench1@example.com", "name": "Bench One"}, {"email": "bench1@example.com", "company": "B"}]
    )
    calls = "id;email;summary\n7;bench1@example.com;Asked about prices\n"  # a spreadsheet's European CSV
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(asked["url"], {
            "file_leads": SimpleUploadedFile("leads.json", leads.encode(), content_type="application/json"),
            "file_calls": SimpleUploadedFile("calls.csv", calls.encode("utf-8-sig"), content_type="text/csv"),
        })  # fmt: skip
    assert response.status_code == 200, response.content.decode()
    system_run = asked["system_run"]
    system_run.refresh_from_db()
    assert system_run.counts == {"leads": 2, "calls": 1}
    calls_kept = [r for c, r in result_records(system_run.result_name) if c == "calls"]
    assert calls_kept == [{"id": "7", "email": "bench1@example.com", "summary": "Asked about prices"}]


@pytest.mark.parametrize("files, message", [
    ({"file_leads": ("leads.csv", b"email,phone\nbench1@example.com,555\n")},
     "leads.csv: column &#x27;phone&#x27; is not a field of leads (its fields: email, name, company, met_on, notes)"),
    ({"file_leads": ("leads.json", b'[{"email": "a@example.com", "ssn": "1"}]')},
     "leads.json: record 1 has the field &#x27;ssn&#x27; is not a field of leads"),
    ({"file_leads": ("leads.json", b'{"calls": []}')}, "a JSON object must hold one key, &#x27;leads&#x27;"),
    ({"file_leads": ("leads.json", b"[1, 2]")}, "leads.json: record 1 is not an object"),
    ({"file_leads": ("leads.json", b"{not json")}, "leads.json is not valid JSON"),
    ({"file_leads": ("leads.csv", b"email,name\nx@example.com,A,extra\n")}, "leads.csv, line 2: 3 values for 2 columns"),
    ({"file_leads": ("leads.csv", "email\n\xe9\n".encode("latin-1"))}, "leads.csv is not UTF-8 text"),
    ({"file_leads": ("leads.csv", b"")}, "leads.csv is empty"),
    ({"file_invoices": ("x.csv", b"id\n1\n")}, "&#x27;invoices&#x27; is not a collection of crm"),
    ({}, "Upload the export of at least one collection"),
])  # fmt: skip
def test_a_bad_upload_is_refused_by_name_and_records_nothing(client, asked, mailoutbox, files, message):
    sent = len(mailoutbox)
    data = {"answer": "records", **{k: SimpleUploadedFile(n, b) for k, (n, b) in files.items()}}
    if files:
        # A good file beside the bad one is not kept either: the answer is all or nothing.
        data.setdefault("file_calls", SimpleUploadedFile("calls.csv", b"id,email\n1,bench1@example.com\n"))
    response = client.post(asked["url"], data)
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page, page[page.find("error-summary") :][:600]
    assert "Nothing was kept from this attempt" in page
    system_run = asked["system_run"]
    system_run.refresh_from_db()
    assert system_run.status == SystemStatus.WAITING_MANUAL and not system_run.result_name
    assert ManualTask.objects.get(system_run=system_run).answered_at is None
    assert _events(asked["req"], EventType.FULFILMENT_MANUAL_ANSWERED) == []
    assert len(mailoutbox) == sent
    # ...and the owner can then send a good file.
    good = client.post(asked["url"], {"file_leads": SimpleUploadedFile("leads.csv", LEADS_CSV.encode())})
    assert good.status_code == 200


def test_an_upload_over_the_size_limit_is_refused(client, asked, settings):
    settings.DSR_UPLOAD_MAX_BYTES = 40
    response = client.post(asked["url"], {"file_leads": SimpleUploadedFile("leads.csv", LEADS_CSV.encode())})
    assert response.status_code == 400 and "the limit is 40 bytes" in response.content.decode()
    asked["system_run"].refresh_from_db()
    assert asked["system_run"].status == SystemStatus.WAITING_MANUAL


def test_nothing_held_needs_the_confirmation_then_answers_with_no_records(
    client, asked, django_capture_on_commit_callbacks
):
    unconfirmed = client.post(asked["url"], {"answer": "nothing_held"})
    assert unconfirmed.status_code == 400 and "Tick the box" in unconfirmed.content.decode()
    assert _events(asked["req"], EventType.FULFILMENT_MANUAL_ANSWERED) == []
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(asked["url"], {"answer": "nothing_held", "confirm": "yes"})
    assert response.status_code == 200 and "holds nothing about this person" in response.content.decode()
    system_run = asked["system_run"]
    system_run.refresh_from_db()
    assert (system_run.status, system_run.records) == (SystemStatus.DONE, 0)
    [answered] = _events(asked["req"], EventType.FULFILMENT_MANUAL_ANSWERED)
    assert answered.data["nothing_held"] is True and answered.data["records"] == 0
    assert ManualTask.objects.get(system_run=system_run).nothing_held is True


def test_the_staff_page_shows_who_is_still_to_answer(officer, asked):
    from django.test import Client

    staff = Client()
    staff.force_login(officer)
    page = staff.get(f"/dashboard/requests/{asked['req'].reference}/").content.decode()
    assert "waiting for sales@example.com since" in page
    assert "Still to answer:" in page and "crm (sales@example.com)" in page


def test_the_task_page_is_limited_per_client_address(client, asked, settings):
    settings.DSR_RATE_LIMITS = {**settings.DSR_RATE_LIMITS, "task_ip": "3/minute"}
    for _ in range(3):
        client.get("/fulfilment/task/guess/")
    assert client.get(asked["url"]).status_code == 429


def test_owners_are_reminded_with_the_same_link_and_the_team_told_near_the_due_date(
    officer, manual_system, queued, mailoutbox, client, django_capture_on_commit_callbacks
):
    req = verified_request(officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    run_queued(queued, django_capture_on_commit_callbacks)
    first_link = _link(mailoutbox[-1])
    due = req.respond_by
    today = business_today()

    def sweep_on(day):
        mailoutbox.clear()
        moment = timezone.now() + timedelta(days=(day - today).days)
        with time_machine.travel(moment, tick=False), django_capture_on_commit_callbacks(execute=True):
            return manual_tasks.manual_tasks_remind(today=day)

    assert sweep_on(today + timedelta(days=1)) == 0 and mailoutbox == []  # remind_days: 2
    assert sweep_on(today + timedelta(days=2)) == 1
    [reminder] = mailoutbox
    assert reminder.to == ["sales@example.com"] and "Reminder" in reminder.subject
    assert _link(reminder) == first_link  # the same link works
    assert f"({(due - today - timedelta(days=2)).days} days left)" in reminder.body
    assert "bench1@example.com" not in reminder.body
    assert sweep_on(today + timedelta(days=2)) == 0  # once per interval
    assert client.get(first_link).status_code == 200

    # Five days before the due date the team is told, once; the owner keeps being reminded.
    near = due - timedelta(days=manual_tasks.ESCALATE_BEFORE_DUE_DAYS)
    sent = sweep_on(near)
    to = sorted(address for m in mailoutbox for address in m.to)
    assert "olivia@company.example" in to
    staff = [m for m in mailoutbox if m.to == ["olivia@company.example"]]
    assert len(staff) == 1 and "has not answered" in staff[0].subject and "sales@example.com" in staff[0].body
    assert f"http://testserver/dashboard/requests/{req.reference}/" in staff[0].body
    assert sent == len(mailoutbox)
    assert [m.to for m in mailoutbox if m.to != ["olivia@company.example"]] in ([], [["sales@example.com"]])
    sweep_on(near + timedelta(days=1))
    assert not [m for m in mailoutbox if m.to == ["olivia@company.example"]]  # told once

    # Answered: no more reminders.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(first_link, {"answer": "nothing_held", "confirm": "yes"})
    assert sweep_on(near + timedelta(days=4)) == 0 and mailoutbox == []


def test_a_closed_request_sends_no_reminder_and_takes_no_answer(
    officer, asked, client, mailoutbox, django_capture_on_commit_callbacks
):
    from dsr.services.staff_actions import request_cancel

    with django_capture_on_commit_callbacks(execute=True):
        request_cancel(request=asked["req"], actor=Actor.staff(officer), reason="Withdrawn by phone.")
    assert manual_tasks.manual_tasks_remind(today=business_today() + timedelta(days=30)) == 0
    assert not OutboundEmail.objects.filter(template__in=["owner_reminder", "staff_owner_unanswered"]).exists()
    page = client.get(asked["url"])
    assert page.status_code == 200 and "nothing more is needed from you" in page.content.decode()
    assert 'name="file_leads"' not in page.content.decode()
    refused = client.post(asked["url"], {"answer": "nothing_held", "confirm": "yes"})
    assert refused.status_code == 400
    assert _events(asked["req"], EventType.FULFILMENT_MANUAL_ANSWERED) == []


def test_a_failed_http_system_switched_to_its_owner_is_answered_by_upload(
    officer, settings, tmp_path, monkeypatch, processor, queued, mailoutbox, client,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    settings.DSR_FULFILMENT_RETRIES = 0
    path = tmp_path / "datamap.yaml"
    path.write_text(http_map(processor.url))
    settings.DSR_DATAMAP = str(path)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    processor.plan = [Reply(400, {"detail": "unknown customer API version"})]
    req = verified_request(officer=officer)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    run_queued(queued, django_capture_on_commit_callbacks)
    system_run = run.systems.get()
    assert system_run.status == SystemStatus.FAILED
    run.refresh_from_db()
    assert run.state == RunState.FAILED

    # The officer asks the owner instead, from the request's page.
    staff = client.__class__()
    staff.force_login(officer)
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(f"/dashboard/fulfilment/requests/{req.reference}/systems/payments/manual/")
    assert response.status_code == 302
    system_run.refresh_from_db()
    assert system_run.status == SystemStatus.WAITING_MANUAL
    [email] = mailoutbox
    assert email.to == ["finance@example.com"]
    [switched] = _events(req, EventType.FULFILMENT_SYSTEM_SWITCHED_TO_MANUAL)
    assert switched.data["owner"] == "finance@example.com"
    run.refresh_from_db()
    assert run.state == RunState.RUNNING

    page = client.get(_link(email)).content.decode()
    assert "Fields of payment_methods" in page and "How to search" not in page  # an http system has no instructions
    charges = "id,email,amount_cents,charged_at\nch_9,bench1@example.com,999,2026-11-20T09:00:00+00:00\n"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_link(email), {"file_charges": SimpleUploadedFile("charges.csv", charges.encode())})
    assert response.status_code == 200
    system_run.refresh_from_db()
    run.refresh_from_db()
    assert (system_run.status, system_run.counts["charges"]) == (SystemStatus.DONE, 1)
    assert run.state == RunState.DONE and queued["package"] == [run.pk]


def test_switching_twice_or_a_system_that_is_done_is_refused(officer, asked):
    from dsr.errors import TransitionNotAllowed

    with pytest.raises(TransitionNotAllowed, match="waiting for the owner; nothing to switch"):
        runs.system_run_switch_to_manual(request=asked["req"], system="crm", actor=Actor.staff(officer))
