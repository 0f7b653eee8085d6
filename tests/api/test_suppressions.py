"""The suppression list: each source puts the right scope on it once, the address itself is never
stored, the product's own marketing mail respects it while mail about a person's own request still
goes, and other systems read it (list, CSV) or check one address through the staff API."""

import csv
import hashlib
import hmac
import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.pagination import PageNumberPagination
from rest_framework.test import APIClient

from dsr.email_catalogue import CATALOGUE, sample_context
from dsr.models import AuditEvent, DataSubjectRequest, OutboundEmail, Suppression
from dsr.services.audit import Actor
from dsr.services.emails import marketing_email_queue
from dsr.services.staff_actions import request_complete, request_deny, request_reopen
from dsr.services.suppression import suppression_add, suppression_add_for_request, suppression_hash
from dsr.services.unsubscribe import unsubscribe_token
from tests.factories import officer_create, request_create, staff_token_key
from tests.support.services import in_threads

pytestmark = pytest.mark.django_db

ADDRESS = "Casey.Reader+news@Example.org"


def _expected_hash(email: str, key: str = "test-suppression-key, not secret") -> str:
    """Recomputed here, independently of the product's code."""
    normalised = email.strip().lower()
    return hmac.new(key.encode(), b"dsr-suppression\x00" + normalised.encode(), hashlib.sha256).hexdigest()


def _rows():
    return sorted(Suppression.objects.values_list("email_hash", "scope", "source", "reference"))


def _complete(r, officer):
    return request_complete(request=r, actor=Actor.staff(officer), message="Done: you are opted out.")


def _form(**overrides):
    data = {
        "request_type": "access",
        "regime": "ccpa",
        "relationship": "customer",
        "email": ADDRESS,
        "full_name": "Casey Reader",
        "access_period": "12_months",
    }
    data.update(overrides)
    return data


# --- Sources ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_type,scope",
    [("opt_out_sale", "sale_sharing"), ("opt_out_marketing", "marketing"), ("limit_sensitive", "sensitive")],
)
def test_a_completed_opt_out_adds_its_scope_once_with_an_event(officer, request_type, scope):
    r = request_create(request_type=request_type, email=ADDRESS)
    assert Suppression.objects.count() == 0  # received and in progress: not yet
    _complete(r, officer)
    assert _rows() == [(_expected_hash(ADDRESS), scope, "request", r.reference)]
    events = r.events.filter(event_type="suppression_added")
    assert [e.data for e in events] == [{"scope": scope, "source": "request"}]
    # Completed again after a reopening: nothing new, no second event.
    reopened = request_reopen(
        request=DataSubjectRequest.objects.get(pk=r.pk), actor=Actor.staff(officer), reason="The requester asked again."
    )
    _complete(reopened, officer)
    assert len(_rows()) == 1 and r.events.filter(event_type="suppression_added").count() == 1
    assert suppression_add_for_request(request=reopened) is None


@pytest.mark.parametrize("request_type", ["access", "erasure", "objection", "withdraw_consent"])
def test_other_requests_add_nothing_when_completed(officer, request_type):
    r = request_create(request_type=request_type, email=ADDRESS)
    DataSubjectRequest.objects.filter(pk=r.pk).update(status="in_progress", verified_at=timezone.now())
    _complete(DataSubjectRequest.objects.get(pk=r.pk), officer)
    assert Suppression.objects.count() == 0
    assert not AuditEvent.objects.filter(event_type="suppression_added").exists()


def test_a_denied_opt_out_adds_nothing(officer):
    r = request_create(request_type="opt_out_sale", email=ADDRESS)
    request_deny(request=r, actor=Actor.staff(officer), reason_category="other", message="Not a consumer of ours.")
    assert Suppression.objects.count() == 0


def test_gpc_on_the_form_adds_sale_sharing_once_for_both_requests_it_makes(client, officer):
    assert client.post("/", _form(request_type="erasure"), HTTP_SEC_GPC="1").status_code == 302
    erasure = DataSubjectRequest.objects.get(request_type="erasure")
    opt_out = DataSubjectRequest.objects.get(request_type="opt_out_sale")
    assert _rows() == [(_expected_hash(ADDRESS), "sale_sharing", "gpc", erasure.reference)]
    assert [e.data for e in AuditEvent.objects.filter(event_type="suppression_added")] == [
        {"scope": "sale_sharing", "source": "gpc"}
    ]
    # Completing the opt-out that the signal made changes nothing more: the signal was first.
    _complete(opt_out, officer)
    assert [r[1:3] for r in _rows()] == [("sale_sharing", "gpc")]
    # Without the signal, the form adds nothing.
    client.post("/", _form(email="other@example.org"))
    assert Suppression.objects.count() == 1


def test_gpc_on_the_public_api_adds_sale_sharing(api):
    res = api.post(
        "/api/v1/requests/",
        {"type": "access", "regime": "ccpa", "email": ADDRESS, "full_name": "C R"},
        format="json",
        HTTP_SEC_GPC="1",
    )
    assert res.status_code == 201
    assert [r[1:3] for r in _rows()] == [("sale_sharing", "gpc")]


def test_a_failed_gpc_submission_leaves_nothing_on_the_list(client, monkeypatch):
    save = DataSubjectRequest.save

    def opt_out_insert_fails(self, *args, **kwargs):
        if self._state.adding and self.request_type == "opt_out_sale":
            raise RuntimeError("the database went away")
        return save(self, *args, **kwargs)

    monkeypatch.setattr(DataSubjectRequest, "save", opt_out_insert_fails)
    with pytest.raises(RuntimeError):
        client.post("/", _form(request_type="erasure"), HTTP_SEC_GPC="1")
    assert not Suppression.objects.exists() and not DataSubjectRequest.objects.exists()


def test_an_unsubscribe_link_adds_marketing_once(client, officer, django_capture_on_commit_callbacks):
    token = unsubscribe_token(ADDRESS)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/unsubscribe/{token}/", {"List-Unsubscribe": "One-Click"}).status_code == 200
    opt_out = DataSubjectRequest.objects.get()
    assert _rows() == [(_expected_hash(ADDRESS), "marketing", "unsubscribe", opt_out.reference)]
    assert opt_out.events.filter(event_type="suppression_added").count() == 1
    before = (_rows(), AuditEvent.objects.count())
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/unsubscribe/{token}/", {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert (_rows(), AuditEvent.objects.count()) == before
    _complete(opt_out, officer)  # the opt-out request it made, completed: already there
    assert [r[1:3] for r in _rows()] == [("marketing", "unsubscribe")]
    assert opt_out.events.filter(event_type="suppression_added").count() == 1


def test_one_address_in_any_spelling_is_one_entry():
    assert suppression_add(email=ADDRESS, scope="marketing", source="staff") is not None
    assert suppression_add(email=f"  {ADDRESS.upper()} ", scope="marketing", source="unsubscribe") is None
    assert suppression_add(email=ADDRESS.lower(), scope="sale_sharing", source="gpc") is not None
    assert Suppression.objects.count() == 2
    assert suppression_hash("casey.reader+news@example.org") == _expected_hash(ADDRESS)
    assert suppression_hash("casey.reader@example.org") != suppression_hash(ADDRESS)  # a +tag may be another box


def test_unknown_scope_or_source_is_refused():
    for scope, source in (("newsletter", "staff"), ("marketing", "guess")):
        with pytest.raises(ValueError):
            suppression_add(email=ADDRESS, scope=scope, source=source)
    assert not Suppression.objects.exists()


def test_the_hash_depends_on_the_key_and_a_missing_key_stops_everything(settings):
    first = suppression_hash(ADDRESS)
    settings.DSR_SUPPRESSION_KEY = "another key"
    assert suppression_hash(ADDRESS) == _expected_hash(ADDRESS, "another key") != first
    settings.DSR_SUPPRESSION_KEY = ""
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        suppression_add(email=ADDRESS, scope="marketing", source="staff")
    assert not Suppression.objects.exists()


def test_the_address_is_stored_nowhere_on_the_list_or_its_events(client, officer, django_capture_on_commit_callbacks):
    client.post("/", _form(request_type="erasure"), HTTP_SEC_GPC="1")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/unsubscribe/{unsubscribe_token(ADDRESS)}/", {"List-Unsubscribe": "One-Click"})
    _complete(request_create(request_type="limit_sensitive", email=ADDRESS), officer)
    assert Suppression.objects.count() == 3
    stored = " ".join(str(v) for row in Suppression.objects.values() for v in row.values()).lower()
    for part in ("casey", "reader", "example.org", "@"):
        assert part not in stored
    for event in AuditEvent.objects.filter(event_type="suppression_added"):
        assert "casey" not in str(event.data).lower() and _expected_hash(ADDRESS) not in str(event.data)


# --- The product's own mail ------------------------------------------------------------------------


def _marketing(to):
    kind = next(k for k in CATALOGUE if k.template == "team_message")
    return marketing_email_queue(template=kind.template, to=to, language="en", context=sample_context(kind))


@pytest.mark.parametrize(
    "scope,suppressed", [("marketing", True), ("all", True), ("sale_sharing", False), ("sensitive", False)]
)
def test_marketing_mail_is_not_queued_to_a_suppressed_address(
    scope, suppressed, mailoutbox, django_capture_on_commit_callbacks
):
    suppression_add(email=ADDRESS, scope=scope, source="staff")
    with django_capture_on_commit_callbacks(execute=True):
        email = _marketing(ADDRESS.upper())
    if suppressed:
        assert email is None and not OutboundEmail.objects.exists() and mailoutbox == []
    else:
        assert email is not None and [m.to for m in mailoutbox] == [[ADDRESS.upper()]]
        assert mailoutbox[0].extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_mail_about_the_persons_own_request_still_goes_after_they_unsubscribed(
    client, officer, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/unsubscribe/{unsubscribe_token(ADDRESS)}/", {"List-Unsubscribe": "One-Click"})
    assert Suppression.objects.filter(scope="marketing").exists()
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        _complete(DataSubjectRequest.objects.get(), officer)  # the opt-out's confirmation
        request_create(request_type="access", email=ADDRESS)  # a new request's acknowledgement
        assert _marketing(ADDRESS) is None
    assert sorted(OutboundEmail.objects.filter(sent_at__isnull=False).values_list("template", flat=True)) == [
        "opt_out_confirmed",
        "received",
        "received",
    ]
    assert len(mailoutbox) == 2 and all(m.to[0].lower() == ADDRESS.lower() for m in mailoutbox)


# --- The staff API ---------------------------------------------------------------------------------


@pytest.fixture
def listed(officer):
    """Three addresses on the list, added at known times."""
    now = timezone.now()
    for i, (email, scope, source) in enumerate(
        [
            ("a@example.org", "marketing", "unsubscribe"),
            ("b@example.org", "sale_sharing", "gpc"),
            ("c@example.org", "all", "staff"),
        ]
    ):
        row = suppression_add(email=email, scope=scope, source=source)
        Suppression.objects.filter(pk=row.pk).update(created_at=now - timedelta(days=3 - i))
    return now


def test_the_list_pages_and_filters(staff_api, listed, django_assert_num_queries, monkeypatch):
    url = reverse("api:suppressions")
    # Signing in by token costs 5 (the token, its user's tokens, its last use, the user's and the
    # groups' permissions); then the count and the page, whatever the number of rows.
    with django_assert_num_queries(7):
        res = staff_api.get(url)
    assert res.status_code == 200
    body = res.json()
    assert body["count"] == 3
    assert [item["scope"] for item in body["results"]] == ["marketing", "sale_sharing", "all"]  # oldest first
    assert body["results"][0] == {
        "hash": _expected_hash("a@example.org"),
        "scope": "marketing",
        "source": "unsubscribe",
        "created_at": body["results"][0]["created_at"],
    }
    assert set(body["results"][0]) == {"hash", "scope", "source", "created_at"}
    assert [i["source"] for i in staff_api.get(url, {"scope": "sale_sharing"}).json()["results"]] == ["gpc"]
    since = (listed - timedelta(days=1, hours=12)).isoformat()
    assert [i["scope"] for i in staff_api.get(url, {"since": since}).json()["results"]] == ["all"]
    monkeypatch.setattr(PageNumberPagination, "page_size", 2)  # read from the settings at import
    first = staff_api.get(url).json()
    assert len(first["results"]) == 2 and first["next"]
    assert [i["scope"] for i in staff_api.get(first["next"]).json()["results"]] == ["all"]


@pytest.mark.parametrize("params,field", [({"scope": "newsletter"}, "scope"), ({"since": "yesterday"}, "since")])
def test_bad_filters_are_a_problem_naming_the_field(staff_api, params, field):
    res = staff_api.get(reverse("api:suppressions"), params)
    assert res.status_code == 400 and res["Content-Type"].startswith("application/problem+json")
    assert field in str(res.json())


def test_the_csv_has_the_same_rows_and_filters(staff_api, listed, django_assert_num_queries):
    with django_assert_num_queries(6):  # signing in by token (5), then the rows in one query
        res = staff_api.get(reverse("api:suppressions-csv"))
        body = b"".join(res.streaming_content).decode()
    assert res.status_code == 200 and res["Content-Type"].startswith("text/csv")
    assert "attachment" in res["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(body, newline="")))
    assert rows[0] == ["hash", "scope", "source", "created_at"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        (_expected_hash("a@example.org"), "marketing", "unsubscribe"),
        (_expected_hash("b@example.org"), "sale_sharing", "gpc"),
        (_expected_hash("c@example.org"), "all", "staff"),
    ]
    filtered = staff_api.get(reverse("api:suppressions-csv"), {"scope": "all"})
    assert len(list(csv.reader(io.StringIO(b"".join(filtered.streaming_content).decode())))) == 2
    assert staff_api.get(reverse("api:suppressions-csv"), {"scope": "x"}).status_code == 400


def test_the_check_answers_the_scopes_and_writes_nothing(staff_api, listed):
    url = reverse("api:suppressions-check")
    before = (Suppression.objects.count(), AuditEvent.objects.count())
    assert staff_api.post(url, {"email": " A@Example.org "}, format="json").json() == {
        "suppressed": True,
        "scopes": ["marketing"],
    }
    assert staff_api.post(url, {"email": "c@example.org"}, format="json").json() == {
        "suppressed": True,
        "scopes": ["all", "marketing", "sale_sharing", "sensitive"],
    }
    assert staff_api.post(url, {"email": "nobody@example.org"}, format="json").json() == {
        "suppressed": False,
        "scopes": [],
    }
    assert (Suppression.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "no-at-sign"},
        {"email": "a@example.org\nBcc: x@example.org"},
        {"email": ["a@example.org"]},
        {"email": "a" * 250 + "@example.org"},
    ],
)
def test_the_check_refuses_what_is_not_an_address(staff_api, body):
    res = staff_api.post(reverse("api:suppressions-check"), body, format="json")
    assert res.status_code == 400 and res["Content-Type"].startswith("application/problem+json")
    assert "email" in str(res.json())


def test_without_a_token_nothing_is_read(listed):
    for method, name in (("get", "suppressions"), ("get", "suppressions-csv"), ("post", "suppressions-check")):
        res = getattr(APIClient(), method)(reverse(f"api:{name}"), {"email": "a@example.org"}, format="json")
        assert res.status_code == 401, name
        assert _expected_hash("a@example.org") not in res.content.decode()


def test_a_reviewer_reads_the_list_and_a_user_without_a_role_does_not(listed):
    reviewer = officer_create(username="rob", email="rob@company.example", role="reviewer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_key(reviewer)}")
    assert client.get(reverse("api:suppressions")).json()["count"] == 3
    administrator = officer_create(username="ada", email="ada@company.example", role="administrator")
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_key(administrator)}")
    res = client.get(reverse("api:suppressions"))
    assert res.status_code == 403 and _expected_hash("a@example.org") not in res.content.decode()


@pytest.mark.postgres
def test_sources_adding_one_address_at_the_same_moment_make_one_entry(transactional_db):
    sources = ["staff", "unsubscribe", "request", "staff", "unsubscribe", "request"]
    added, errors = in_threads(6, lambda i: suppression_add(email=ADDRESS, scope="marketing", source=sources[i]))
    assert errors == []
    assert len([row for row in added if row is not None]) == 1 and len(added) == 6
    assert Suppression.objects.count() == 1


# --- Staff entries ---------------------------------------------------------------------------------


def test_staff_add_addresses_by_command_once_each():
    out = io.StringIO()
    call_command("dsr_suppression_add", ADDRESS, "other@example.org", "--scope", "all", stdout=out)
    assert "2 added to the suppression list for all; 0 already there." in out.getvalue()
    assert sorted(r[1:3] for r in _rows()) == [("all", "staff"), ("all", "staff")]
    assert ADDRESS.lower() not in out.getvalue().lower()
    again = io.StringIO()
    call_command("dsr_suppression_add", ADDRESS.upper(), "--scope", "all", stdout=again)
    assert "0 added" in again.getvalue() and "1 already there" in again.getvalue()
    assert Suppression.objects.count() == 2


@pytest.mark.parametrize("bad", ["no-at-sign", "a@example.org\nb@example.org"])
def test_the_command_refuses_a_bad_address_and_adds_none(bad):
    with pytest.raises(CommandError, match="Address 2"):
        call_command("dsr_suppression_add", "fine@example.org", bad, "--scope", "marketing", stdout=io.StringIO())
    assert not Suppression.objects.exists()


def test_the_command_refuses_an_unknown_scope():
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("dsr_suppression_add", "fine@example.org", "--scope", "newsletter", stdout=io.StringIO())
    assert not Suppression.objects.exists()
