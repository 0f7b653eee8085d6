"""Identity verification: email ownership by link or code, risk-scaled matching, timers."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from dsr.errors import TransitionNotAllowed
from dsr.models import DemoCustomer, Status, VerificationChallenge
from dsr.services import verification as v
from dsr.services.sweep import deadline_sweep
from tests.factories import request_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer():
    return DemoCustomer.objects.create(
        email="cust@example.org",
        full_name="Carla Customer",
        phone="+1 (415) 555-0100",
        postal_code="94103",
        customer_number="C-1001",
    )


def _issued_from_mail(mail):
    body = mail.body
    token = re.search(r"/v/([\w-]+)/", body).group(1)
    code = re.search(r"request page: (\d{6})", body).group(1)
    return token, code


def _submit(django_capture_on_commit_callbacks, mailoutbox, **kw):
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(email=kw.pop("email", "cust@example.org"), **kw)
    return r, _issued_from_mail(mailoutbox[-1])


def test_received_email_carries_link_and_code_and_only_hashes_are_stored(
    customer, django_capture_on_commit_callbacks, mailoutbox
):
    r, (token, code) = _submit(django_capture_on_commit_callbacks, mailoutbox)
    challenge = VerificationChallenge.objects.get(request=r)
    assert token not in challenge.token_hash and code not in challenge.code_hash
    assert len(challenge.token_hash) == 64 and challenge.is_live


def test_link_confirms_email_once(customer, django_capture_on_commit_callbacks, mailoutbox):
    r, (token, _) = _submit(django_capture_on_commit_callbacks, mailoutbox, request_type="objection")
    done = v.challenge_confirm_link(token=token)
    assert done.email_verified_at is not None
    # Objection needs only the email address: verified at once.
    assert done.status == Status.VERIFIED and done.verification_method == "email"
    again = v.challenge_confirm_link(token=token)  # a second click changes nothing
    assert again.status == Status.VERIFIED
    assert r.events.filter(event_type="email_verified").count() == 1


def test_bad_expired_and_replaced_links_are_refused(customer, django_capture_on_commit_callbacks, mailoutbox):
    r, (token, _) = _submit(django_capture_on_commit_callbacks, mailoutbox)
    with pytest.raises(v.ChallengeRefused, match="not valid"):
        v.challenge_confirm_link(token="nonsense")
    with django_capture_on_commit_callbacks(execute=True):
        v.challenge_resend(request=r)
    with pytest.raises(v.ChallengeRefused, match="replaced"):
        v.challenge_confirm_link(token=token)
    new_token, _ = _issued_from_mail(mailoutbox[-1])
    VerificationChallenge.objects.filter(request=r, revoked_at__isnull=True).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    with pytest.raises(v.ChallengeRefused, match="expired"):
        v.challenge_confirm_link(token=new_token)
    r.refresh_from_db()
    assert r.email_verified_at is None


def test_code_attempts_are_limited(customer, settings, django_capture_on_commit_callbacks, mailoutbox):
    settings.DSR_VERIFY_MAX_ATTEMPTS = 3
    r, (_, code) = _submit(django_capture_on_commit_callbacks, mailoutbox)
    wrong = "000000" if code != "000000" else "111111"
    assert "2 more" in v.challenge_confirm_code(request=r, code=wrong).message
    assert "1 more" in v.challenge_confirm_code(request=r, code=wrong).message
    assert "Too many" in v.challenge_confirm_code(request=r, code=wrong).message
    assert not v.challenge_confirm_code(request=r, code=code).ok  # locked even with the right code
    with django_capture_on_commit_callbacks(execute=True):
        v.challenge_resend(request=r)
    _, new_code = _issued_from_mail(mailoutbox[-1])
    result = v.challenge_confirm_code(request=r, code=f"{new_code[:3]} {new_code[3:]}")  # spaces are forgiven
    assert result.ok and result.request.email_verified_at is not None


def test_categories_need_two_points(customer, django_capture_on_commit_callbacks, mailoutbox):
    r, (_, code) = _submit(django_capture_on_commit_callbacks, mailoutbox, request_type="access")
    v.challenge_confirm_code(request=r, code=code)
    miss = v.identity_match_submit(request=r, claims={"postal_code": "10001"})
    assert (miss.verified, miss.matched, miss.required) == (False, 1, 2)
    hit = v.identity_match_submit(request=r, claims={"postal_code": " 94103 "})
    assert hit.verified
    r.refresh_from_db()
    assert r.status == Status.VERIFIED and r.verification_method == "data_match"
    checked = r.events.filter(event_type="identity_checked").last()
    assert checked.data["points_matched"] == ["email", "postal_code"]
    assert "94103" not in str(checked.data)  # §7060(d): values are not kept


def test_specific_pieces_need_three_points_and_a_declaration(customer, django_capture_on_commit_callbacks, mailoutbox):
    r, (_, code) = _submit(django_capture_on_commit_callbacks, mailoutbox, request_type="access_specific")
    v.challenge_confirm_code(request=r, code=code)
    claims = {"phone": "415-555-0100", "customer_number": "c 1001"}
    result = v.identity_match_submit(request=r, claims=claims, declaration_name="Carla Customer", declared=True)
    assert result.verified and not result.downgraded
    r.refresh_from_db()
    assert r.request_type == "access_specific"
    assert r.events.get(event_type="identity_checked").data["declaration"]["signed_as"] == "Carla Customer"


def test_unverified_specific_pieces_fall_back_to_categories(customer, django_capture_on_commit_callbacks, mailoutbox):
    r, (_, code) = _submit(django_capture_on_commit_callbacks, mailoutbox, request_type="access_specific")
    v.challenge_confirm_code(request=r, code=code)
    result = v.identity_match_submit(request=r, claims={"phone": "4155550100"})  # 2 points, no declaration
    assert result.verified and result.downgraded
    r.refresh_from_db()
    assert r.request_type == "access" and r.status == Status.VERIFIED
    assert r.events.filter(event_type="treated_as_categories").exists()


def test_correction_is_never_verified_with_the_field_being_corrected(
    customer, django_capture_on_commit_callbacks, mailoutbox
):
    r, (_, code) = _submit(django_capture_on_commit_callbacks, mailoutbox, request_type="rectification")
    assert r.corrected_fields == {"postal_code"}
    v.challenge_confirm_code(request=r, code=code)
    assert not v.identity_match_submit(request=r, claims={"postal_code": "94103"}).verified
    # A name is publicly knowable: it is no data point for a correction (dsr.identity.CLAIMS_COUNTED).
    assert not v.identity_match_submit(request=r, claims={"full_name": "carla  customer"}).verified
    assert v.identity_match_submit(request=r, claims={"phone": "(415) 555 0100"}).verified


def test_unknown_email_matches_nothing_but_the_email(django_capture_on_commit_callbacks, mailoutbox):
    r, (_, code) = _submit(django_capture_on_commit_callbacks, mailoutbox, email="stranger@example.org")
    v.challenge_confirm_code(request=r, code=code)
    assert v.identity_match_submit(request=r, claims={"postal_code": "94103"}).matched == 1


def test_identity_check_needs_the_email_first(customer, django_capture_on_commit_callbacks, mailoutbox):
    r, _ = _submit(django_capture_on_commit_callbacks, mailoutbox)
    with pytest.raises(TransitionNotAllowed):
        v.identity_match_submit(request=r, claims={"postal_code": "94103"})
    assert not r.events.filter(event_type="identity_checked").exists()


def test_opt_outs_have_no_verification_timers(django_capture_on_commit_callbacks, mailoutbox):
    with django_capture_on_commit_callbacks(execute=True):
        r = request_create(request_type="opt_out_sale")
    assert (r.verify_remind_on, r.verify_expire_on) == (None, None)
    assert not VerificationChallenge.objects.filter(request=r).exists()
    assert "/v/" not in mailoutbox[0].body


def test_reminder_then_closed_as_unverifiable(customer, settings, django_capture_on_commit_callbacks, mailoutbox):
    r, _ = _submit(django_capture_on_commit_callbacks, mailoutbox)
    r.refresh_from_db()
    from dsr.deadlines import business_today

    today = business_today()
    assert r.verify_remind_on == today + timedelta(days=settings.DSR_VERIFY_REMIND_DAYS)
    assert r.verify_expire_on == min(today + timedelta(days=settings.DSR_VERIFY_EXPIRE_DAYS), r.respond_by)
    with django_capture_on_commit_callbacks(execute=True):
        report = deadline_sweep(today=r.verify_remind_on)
    assert (r.reference, "verification_reminder") in report.fired
    assert mailoutbox[-1].subject.startswith("Reminder: confirm your email")
    token, _ = _issued_from_mail(mailoutbox[-1])
    assert VerificationChallenge.objects.filter(request=r, revoked_at__isnull=True, used_at__isnull=True).count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        report = deadline_sweep(today=r.verify_expire_on)
    assert (r.reference, "verification_expired") in report.fired
    r.refresh_from_db()
    assert r.status == Status.DENIED and r.denial_reason == "unverifiable"
    assert "could not confirm" in mailoutbox[-1].body
    with pytest.raises(v.ChallengeRefused):
        v.challenge_confirm_link(token=token)


def test_verified_requests_are_not_expired(customer, django_capture_on_commit_callbacks, mailoutbox):
    r, (token, _) = _submit(django_capture_on_commit_callbacks, mailoutbox, request_type="objection")
    v.challenge_confirm_link(token=token)
    r.refresh_from_db()
    assert (r.verify_remind_on, r.verify_expire_on) == (None, None)
    assert deadline_sweep(today=timezone.localdate() + timedelta(days=30)).count("verification_expired") == 0
