"""The privacy officer's dashboard: access by role, the queue, a request's actions, bulk, reports."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from dsr.errors import InvalidInput
from dsr.models import DataSubjectRequest, OutboundEmail, Status
from dsr.reports import metrics_for_year
from dsr.services.audit import Actor
from dsr.services.staff_actions import (
    request_assign,
    request_cancel,
    request_complete,
    request_deny,
    request_note_add,
    request_verify,
)
from tests.factories import officer_create, request_create

pytestmark = pytest.mark.django_db
LA = ZoneInfo("America/Los_Angeles")


@pytest.fixture
def signed_in(client, officer):
    client.login(username="olivia", password="correct horse battery")
    return client


def test_access_needs_sign_in_and_a_role(client, officer, django_user_model):
    r = request_create()
    assert client.get("/dashboard/")["Location"].startswith("/accounts/login/")
    django_user_model.objects.create_user("plain", "plain@example.org", "pw-long-enough-1")
    client.login(username="plain", password="pw-long-enough-1")
    assert client.get("/dashboard/").status_code == 403
    assert client.get(f"/dashboard/requests/{r.reference}/").status_code == 403
    officer_create(username="rita", email="rita@company.example")
    from django.core.management import call_command
    import io

    call_command(
        "dsr_create_officer",
        "rev",
        email="rev@company.example",
        password="pw-long-enough-2",
        role="reviewer",
        stdout=io.StringIO(),
    )
    client.login(username="rev", password="pw-long-enough-2")
    page = client.get(f"/dashboard/requests/{r.reference}/").content.decode()
    assert "Add an internal note" in page and "Deny" not in page  # a reviewer reads and comments
    res = client.post(
        f"/dashboard/requests/{r.reference}/deny/",
        {"deny-reason_category": "exempt", "deny-message": "x", "deny-confirmed": "True"},
    )
    assert res.status_code == 403
    r.refresh_from_db()
    assert r.status == Status.AWAITING_VERIFICATION
    ok = client.post(
        f"/dashboard/requests/{r.reference}/note/",
        {"note-text": "Looks like a known customer.", "note-confirmed": "True"},
    )
    assert ok.status_code == 302
    assert r.events.get(event_type="internal_note").actor_label == "rev"


def test_an_internal_note_is_recorded_by_its_service_and_a_blank_one_refused(officer):
    r = request_create()
    emails = OutboundEmail.objects.count()
    noted = request_note_add(request=r, actor=Actor.staff(officer), text="  Called them; they confirmed the order.  ")
    event = noted.events.get(event_type="internal_note")
    assert event.data == {"text": "Called them; they confirmed the order."} and event.actor_label == "olivia"
    assert noted.status == r.status and OutboundEmail.objects.count() == emails  # nothing for the requester
    with pytest.raises(InvalidInput) as refused:
        request_note_add(request=r, actor=Actor.staff(officer), text=" \n ")
    assert refused.value.field == "text"
    assert r.events.filter(event_type="internal_note").count() == 1


def test_old_staff_links_lead_to_the_dashboard(signed_in):
    r = request_create()
    assert signed_in.get("/staff/")["Location"] == "/dashboard/"
    assert signed_in.get(f"/staff/requests/{r.reference}/")["Location"] == f"/dashboard/requests/{r.reference}/"


def test_queue_filters_counts_and_colours(signed_in, officer):
    late = request_create(email="late@example.org", received_at=timezone.now() - timedelta(days=60))
    soon = request_create(email="soon@example.org", regime="gdpr", received_at=timezone.now() - timedelta(days=27))
    fresh = request_create(email="fresh@example.org", request_type="erasure")
    request_assign(request=fresh, actor=Actor.staff(officer), assignee=officer)
    closed = request_cancel(
        request=request_create(email="gone@example.org"), actor=Actor.staff(officer), reason="withdrawn"
    )

    def refs(**params):
        res = signed_in.get("/dashboard/", params)
        assert res.status_code == 200
        return {r.reference for r in res.context["page"]}

    assert refs() == {late.reference, soon.reference, fresh.reference}
    assert refs(status="all") == {late.reference, soon.reference, fresh.reference, closed.reference}
    assert refs(overdue="on") == {late.reference}
    assert refs(due_within=7) == {late.reference, soon.reference}
    assert refs(assignee="me") == {fresh.reference}
    assert refs(assignee="none") == {late.reference, soon.reference}
    assert refs(type="erasure") == {fresh.reference}
    assert refs(regime="gdpr") == {soon.reference}
    assert refs(q="late@example.org") == {late.reference}
    page = signed_in.get("/dashboard/")
    assert page.context["counts"]["overdue"] == 1 and page.context["counts"]["open"] == 3
    html = page.content.decode()
    assert 'class="late"' in html and "days late" in html
    ordered = [r.reference for r in signed_in.get("/dashboard/", {"sort": "due"}).context["page"]]
    assert ordered[0] == late.reference


def test_queue_query_count_does_not_grow_with_page_or_table_size(signed_in, officer, django_assert_num_queries):
    for i in range(3):
        request_create(email=f"few{i}@example.org")
    from django.test.utils import CaptureQueriesContext
    from django.db import connection

    with CaptureQueriesContext(connection) as few:
        signed_in.get("/dashboard/")
    for i in range(60):
        r = request_create(email=f"many{i}@example.org")
        if i % 2:
            request_assign(request=r, actor=Actor.staff(officer), assignee=officer)
    with django_assert_num_queries(len(few.captured_queries)):
        res = signed_in.get("/dashboard/")
    assert len(res.context["page"].object_list) == 50


def test_csv_export_of_the_filtered_queue(signed_in):
    request_create(email="a@example.org", request_type="erasure")
    request_create(email="b@example.org", request_type="access")
    res = signed_in.get("/dashboard/queue.csv", {"type": "erasure"})
    body = b"".join(res.streaming_content).decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("reference,type,regime") and len(lines) == 2 and "a@example.org" in lines[1]


def test_actions_confirm_first_then_go_through_the_service(signed_in, django_capture_on_commit_callbacks, mailoutbox):
    r = request_create()
    url = f"/dashboard/requests/{r.reference}/"
    first = signed_in.post(url + "verify/", {"verify-note": "Matched customer number"})
    assert first.status_code == 200 and "Yes, verify identity" in first.content.decode()
    r.refresh_from_db()
    assert r.status == Status.AWAITING_VERIFICATION  # nothing happens before the confirmation
    with django_capture_on_commit_callbacks(execute=True):
        done = signed_in.post(url + "verify/", {"verify-note": "Matched customer number", "verify-confirmed": "True"})
    assert done.status_code == 302
    r.refresh_from_db()
    assert r.status == Status.VERIFIED and r.events.get(event_type="verified").data["note"] == "Matched customer number"
    assert mailoutbox[-1].to == [r.email]
    for action, data in [
        ("approve", {}),
        ("extend", {"reason": "Five systems to search"}),
        ("complete", {"message": "We sent you everything.", "outcome": "complied"}),
    ]:
        payload = {f"{action}-{k}": v for k, v in data.items()} | {f"{action}-confirmed": "True"}
        assert signed_in.post(url + f"{action}/", payload).status_code == 302, action
    r.refresh_from_db()
    assert r.status == Status.COMPLETED and r.is_extended


def test_deny_warns_that_the_requester_reads_the_message(signed_in):
    r = request_create(regime="gdpr")
    page = signed_in.post(
        f"/dashboard/requests/{r.reference}/deny/", {"deny-reason_category": "exempt", "deny-message": "Legal hold."}
    )
    assert "will read your message word for word" in page.content.decode()


def test_refused_action_shows_why_and_changes_nothing(signed_in):
    r = request_create(regime="gdpr", received_at=timezone.now() - timedelta(days=40))
    events = r.events.count()
    res = signed_in.post(
        f"/dashboard/requests/{r.reference}/extend/", {"extend-reason": "late", "extend-confirmed": "True"}
    )
    assert res.status_code == 400 and "has passed" in res.content.decode()
    assert r.events.count() == events
    missing = signed_in.post(f"/dashboard/requests/{r.reference}/deny/", {"deny-confirmed": "True"})
    assert missing.status_code == 400 and r.events.count() == events
    assert signed_in.post(f"/dashboard/requests/{r.reference}/explode/", {}).status_code == 404


def test_bulk_assign_and_close_as_spam(signed_in, officer):
    a, b = request_create(email="x@example.org"), request_create(email="y@example.org", request_type="erasure")
    signed_in.post(
        "/dashboard/bulk/", {"selected": [a.reference, b.reference], "bulk_action": "assign", "assignee": "olivia"}
    )
    assert set(DataSubjectRequest.objects.values_list("assignee__username", flat=True)) == {"olivia"}
    signed_in.post("/dashboard/bulk/", {"selected": [a.reference], "bulk_action": "spam"})
    a.refresh_from_db()
    assert a.status == Status.CANCELLED and "spam" in a.events.get(event_type="cancelled").data["reason"]


def test_metrics_for_a_year_per_7102(officer):
    staff = Actor.staff(officer)
    base = datetime(2025, 3, 3, 10, 0, tzinfo=LA)
    done = request_create(email="k1@example.org", received_at=base)
    done = request_verify(request=done, actor=staff)
    request_complete(request=done, actor=staff, message="ok")
    DataSubjectRequest.objects.filter(pk=done.pk).update(closed_at=base + timedelta(days=10))
    part = request_create(email="d1@example.org", request_type="erasure", received_at=base)
    part = request_verify(request=part, actor=staff)
    request_complete(request=part, actor=staff, message="kept invoices", outcome="complied_in_part")
    DataSubjectRequest.objects.filter(pk=part.pk).update(closed_at=base + timedelta(days=20))
    denied = request_create(email="d2@example.org", request_type="erasure", received_at=base)
    request_deny(request=denied, actor=staff, reason_category="unverifiable", message="no")
    DataSubjectRequest.objects.filter(pk=denied.pk).update(closed_at=base + timedelta(days=30))
    request_create(email="next-year@example.org", received_at=datetime(2026, 1, 2, 10, 0, tzinfo=LA))
    rows = {r.group: r for r in metrics_for_year(2025)}
    assert (rows["know"].received, rows["know"].complied_whole, rows["know"].median_days) == (1, 1, 10)
    delete = rows["delete"]
    assert (delete.received, delete.complied_part, delete.denied["unverifiable"], delete.denied_total) == (2, 1, 1, 1)
    assert delete.median_days == 25 and delete.mean_days == 25.0
    assert rows["opt-out"].received == 0


def test_report_page_and_csv_and_charts(signed_in):
    for i, t in enumerate(["access", "erasure", "opt_out_sale"]):
        request_create(email=f"c{i}@example.org", request_type=t)
    page = signed_in.get("/dashboard/reports/", {"year": date.today().year})
    html = page.content.decode()
    assert page.status_code == 200 and html.count("<svg") == 3 and "Requests received per week" in html
    assert "https://" not in html.split("<svg", 1)[1].split("</svg>")[0].replace("http://www.w3.org/2000/svg", "")
    csv_text = signed_in.get("/dashboard/reports/metrics.csv", {"year": date.today().year}).content.decode()
    assert csv_text.splitlines()[0].startswith("group,received,complied_in_whole")
    assert any(line.startswith("know,1,") for line in csv_text.splitlines())


def test_chart_figures(officer):
    from dsr.reports import on_time_chart, open_by_days_left_chart, weekly_requests_chart

    staff = Actor.staff(officer)
    monday = date(2026, 11, 16)
    request_create(email="w1@example.org", received_at=datetime(2026, 11, 17, 9, 0, tzinfo=LA))
    request_create(
        email="w2@example.org", request_type="erasure", received_at=datetime(2026, 11, 21, 23, 30, tzinfo=LA)
    )  # Saturday, late
    request_create(
        email="w3@example.org", received_at=datetime(2026, 11, 15, 23, 30, tzinfo=LA)
    )  # Sunday: the week before
    weekly = {row[0]: row for row in weekly_requests_chart(weeks=2, today=date(2026, 11, 22)).table_rows}
    assert weekly[monday.isoformat()][1:3] == [1, 1] and weekly[monday.isoformat()][-1] == 2
    assert weekly["2026-11-09"][-1] == 1
    on_time = request_create(email="t1@example.org", received_at=datetime(2026, 10, 1, 9, 0, tzinfo=LA))
    late = request_create(email="t2@example.org", received_at=datetime(2026, 8, 1, 9, 0, tzinfo=LA))
    for r, closed in (
        (on_time, datetime(2026, 10, 20, 12, 0, tzinfo=LA)),
        (late, datetime(2026, 10, 21, 12, 0, tzinfo=LA)),
    ):
        r = request_verify(request=r, actor=staff)
        request_complete(request=r, actor=staff, message="done")
        DataSubjectRequest.objects.filter(pk=r.pk).update(closed_at=closed)
    months = {row[0]: row for row in on_time_chart(months=2, today=date(2026, 11, 22)).table_rows}
    assert months["2026-10"][1:] == [1, 2, "50%"]
    buckets = dict(open_by_days_left_chart(today=date(2026, 11, 22)).table_rows)
    assert sum(buckets.values()) == 3
