"""Identity matching (RULES.md §3): nothing the requester typed in the request proves who they are,
a publicly knowable name is no point for a copy, a deletion or a correction, guessing is capped per
request, and the perjury declaration (§7062(c)) is asked only of CCPA requests for specific pieces."""

import re

import pytest

from dsr.models import DemoCustomer, OutboundEmail, Regime, RequestType, Status, TYPES_WITHOUT_VERIFICATION
from dsr.services import verification as v
from dsr.services.intake import IntakeDetails
from dsr.services.staff_actions import request_verify
from tests.factories import request_create

pytestmark = pytest.mark.django_db

EMAIL = "carla@example.org"
HELD = {
    "full_name": "Carla Customer",
    "phone": "+1 (415) 555-0100",
    "postal_code": "94103",
    "customer_number": "C-1001",
}
WRONG = {"full_name": "Someone Else", "phone": "+1 212 555 0000", "postal_code": "10001", "customer_number": "C-9999"}
CLAIMS = tuple(HELD)
PRIVATE = ("phone", "postal_code", "customer_number")
# What the rule says, written out here rather than read from the code under test.
NAME_IS_A_POINT_FOR = {"access", "restriction", "objection", "withdraw_consent"}
DECLARATION_FOR = {("ccpa", "access_specific"), ("ccpa", "portability")}


@pytest.fixture
def customer():
    return DemoCustomer.objects.create(email=EMAIL, **HELD)


def _code(r) -> str:
    body = OutboundEmail.objects.filter(request=r, body_text__contains="/v/").order_by("-pk").first().body_text
    return re.search(r"request page: (\d{6})", body).group(1)


def _at_identity_step(**kw):
    """A request whose email address is confirmed, waiting for the identity details."""
    kw.setdefault("full_name", "")
    r = request_create(email=EMAIL, **kw)
    assert v.challenge_confirm_code(request=r, code=_code(r)).ok
    r.refresh_from_db()
    return r


def _last_check(r):
    return r.events.filter(event_type="identity_checked").order_by("-seq").first().data


# --- Nothing typed in the request counts -----------------------------------------------------------


def _typed_in(place: str, value: str) -> dict:
    if place == "form_name":
        return {"full_name": value}
    if place == "details":
        return {"details": f"Please look me up, it is {value} in your system."}
    if place == "agent_name":
        return {
            "intake": IntakeDetails(agent_name=value, agent_email="agent@example.net", agent_power_of_attorney=True)
        }
    row = (
        {"field": "other", "wrong": value, "correct": "something new"}
        if place == "correction_wrong"
        else {"field": "other", "wrong": "something old", "correct": value}
    )
    return {"intake": IntakeDetails(corrections=(row,))}


@pytest.mark.parametrize("place", ["form_name", "details", "agent_name", "correction_wrong", "correction_correct"])
@pytest.mark.parametrize("field", CLAIMS)
def test_a_value_typed_in_the_request_never_counts(customer, field, place):
    # Categories: the type where every claim, the name too, can count — so only the typing excludes it.
    r = _at_identity_step(request_type="access", **_typed_in(place, HELD[field]))
    result = v.identity_match_submit(request=r, claims={field: HELD[field]})
    assert not result.verified and result.matched == 1
    r.refresh_from_db()
    assert r.status == Status.AWAITING_VERIFICATION and r.verified_at is None
    check = _last_check(r)
    assert check["points_matched"] == ["email"]
    assert check["points_not_counted"] == {field: "given in this request"}
    assert HELD[field] not in str(check)  # §7060(d): the typed value is not kept


@pytest.mark.parametrize("field", CLAIMS)
def test_the_same_value_not_typed_elsewhere_counts(customer, field):
    r = _at_identity_step(request_type="access", full_name="C. C.")
    assert v.identity_match_submit(request=r, claims={field: HELD[field]}).verified


def test_a_deletion_is_not_verified_by_the_name_typed_on_the_form(customer):
    r = _at_identity_step(request_type="erasure", full_name=HELD["full_name"])
    assert not v.identity_match_submit(request=r, claims={"full_name": HELD["full_name"]}).verified
    r.refresh_from_db()
    assert r.status == Status.AWAITING_VERIFICATION


@pytest.mark.parametrize("request_type", ["access", "access_specific", "portability", "rectification", "erasure"])
def test_a_name_counts_only_where_the_risk_is_lowest(customer, request_type):
    """Email + the right name (not typed on the form) + enough private points but one."""
    kw = {"request_type": request_type, "regime": "gdpr"}
    r = _at_identity_step(**kw)
    needed_private = {"access": 0, "access_specific": 1, "portability": 1, "rectification": 0, "erasure": 0}[
        request_type
    ]
    # A correction is of the postal code (the factory's default), so that field is not offered.
    private = [f for f in PRIVATE if not (request_type == "rectification" and f == "postal_code")][:needed_private]
    claims = {"full_name": HELD["full_name"], **{f: HELD[f] for f in private}}
    result = v.identity_match_submit(request=r, claims=claims)
    assert result.verified is (request_type in NAME_IS_A_POINT_FOR)
    if request_type not in NAME_IS_A_POINT_FOR:
        assert _last_check(r)["points_not_counted"] == {"full_name": "not accepted for this type of request"}
        # One more private point verifies it: the rule is about the name, not the count.
        extra = [
            f for f in PRIVATE if f not in private and not (request_type == "rectification" and f == "postal_code")
        ][0]
        assert v.identity_match_submit(request=r, claims={**claims, extra: HELD[extra]}).verified


def test_the_status_page_asks_only_for_details_that_count(client, customer):
    erasure = _at_identity_step(request_type="erasure")
    page = client.get(f"/r/{erasure.public_token}/").content.decode()
    assert 'name="phone"' in page and 'name="full_name"' not in page
    access = _at_identity_step(request_type="access")
    assert 'name="full_name"' in client.get(f"/r/{access.public_token}/").content.decode()


# --- Guessing is capped per request ----------------------------------------------------------------


def test_identity_guessing_is_capped_per_request_whatever_the_address(client, customer, officer, settings):
    settings.DSR_RATE_LIMITS = {**settings.DSR_RATE_LIMITS, "verify_ip": "30/hour"}
    cap = settings.DSR_IDENTITY_MAX_ATTEMPTS
    assert cap == 5  # the default
    r = _at_identity_step(request_type="access")
    url = f"/r/{r.public_token}/"
    postcodes = [f"9{n:04d}" for n in range(45)]
    assert HELD["postal_code"] not in postcodes
    codes = [
        client.post(url, {"action": "identity", "postal_code": postcode}, REMOTE_ADDR=f"198.51.100.{n + 1}").status_code
        for n, postcode in enumerate(postcodes)
    ]
    # "did not match" with the tries left, until the last allowed try sends the requester to the page
    # that says the team will review; from then on a try is not taken.
    assert codes == [400] * (cap - 1) + [302] * (len(postcodes) - cap + 1)
    right = client.post(url, {"action": "identity", "postal_code": HELD["postal_code"]}, REMOTE_ADDR="203.0.113.9")
    assert right.status_code == 302
    r.refresh_from_db()
    assert r.status == Status.AWAITING_VERIFICATION and r.verified_at is None
    checks = list(r.events.filter(event_type="identity_checked").order_by("seq").values_list("data", flat=True))
    assert [(c["attempt"], c["max_attempts"], c["outcome"]) for c in checks] == [
        (n, cap, "failed") for n in range(1, cap + 1)
    ]
    assert r.events.filter(event_type="identity_review_required").count() == 1
    assert r.flagged_at is not None and "review" in r.flag_reason
    staff_mail = OutboundEmail.objects.get(request=r, template="staff_identity_review")
    assert staff_mail.to == officer.email and r.reference in staff_mail.subject
    page = client.get(url).content.decode()
    assert "Our team will review your request" in page and 'name="postal_code"' not in page
    # The team can still verify by hand.
    from dsr.services.audit import Actor

    assert request_verify(request=r, actor=Actor.staff(officer), note="Checked by phone").status == Status.VERIFIED


def test_the_requester_is_told_how_many_tries_are_left(client, customer):
    r = _at_identity_step(request_type="access")
    page = client.post(
        f"/r/{r.public_token}/", {"action": "identity", "postal_code": WRONG["postal_code"]}
    ).content.decode()
    assert "did not match" in page and "You can try 4 more times." in page


def test_failed_checks_show_on_the_staff_timeline(client, customer, officer, settings):
    settings.DSR_IDENTITY_MAX_ATTEMPTS = 2
    r = _at_identity_step(request_type="access", full_name=HELD["full_name"])
    v.identity_match_submit(
        request=r, claims={"full_name": HELD["full_name"], "customer_number": WRONG["customer_number"]}
    )
    v.identity_match_submit(request=r, claims={"postal_code": WRONG["postal_code"], "phone": WRONG["phone"]})
    client.login(username="olivia", password="correct horse battery")
    page = client.get(f"/dashboard/requests/{r.reference}/").content.decode()
    timeline = page.split("<h2>Timeline</h2>", 1)[1].split("<h2>Emails</h2>", 1)[0]
    assert "Identity details checked" in timeline
    assert (
        "attempt 1 of 2 · matched email (1 of 2 needed) · not counted: name (given in this request) · did not verify"
        in timeline
    )
    assert "attempt 2 of 2 · matched email (1 of 2 needed) · did not verify" in timeline
    assert "Identity check stopped: review by hand" in timeline and "2 failed attempts of 2 allowed" in timeline
    for typed in (*WRONG.values(), HELD["phone"], HELD["customer_number"]):
        assert typed not in timeline


# --- The perjury declaration follows the regime ----------------------------------------------------


@pytest.mark.parametrize("request_type", RequestType.values)
@pytest.mark.parametrize("regime", Regime.values)
def test_the_perjury_declaration_is_asked_only_of_ccpa_specific_pieces(client, customer, regime, request_type):
    declaration = (regime, request_type) in DECLARATION_FOR
    r = request_create(email=EMAIL, full_name="", request_type=request_type, regime=regime)
    received = OutboundEmail.objects.get(request=r, template="received")
    assert ("perjury" in received.body_text) is declaration
    if request_type in TYPES_WITHOUT_VERIFICATION:
        assert "perjury" not in client.get(f"/r/{r.public_token}/").content.decode()
        return
    v.challenge_confirm_code(request=r, code=_code(r))
    page = client.get(f"/r/{r.public_token}/").content.decode()
    assert ("perjury" in page) is declaration
    assert ('name="declared"' in page) is declaration
    r.refresh_from_db()
    if r.status != Status.AWAITING_VERIFICATION:
        return  # verified by the email address alone (restriction, objection, consent withdrawal)
    # Every detail right, and the declaration ticked whatever the page showed.
    offered = {f: HELD[f] for f in PRIVATE if not (request_type == "rectification" and f == "postal_code")}
    result = v.identity_match_submit(request=r, claims=offered, declaration_name=HELD["full_name"], declared=True)
    assert result.verified and not result.downgraded
    assert (_last_check(r)["declaration"] is not None) is declaration  # nothing recorded outside California
    # No email of the request mentions perjury, except the CCPA acknowledgement that announces it.
    for mail in OutboundEmail.objects.filter(request=r).exclude(pk=received.pk):
        assert "perjury" not in mail.body_text


@pytest.mark.parametrize("regime", Regime.values)
def test_without_the_declaration_only_ccpa_falls_back_to_categories(customer, regime):
    r = _at_identity_step(request_type="access_specific", regime=regime)
    result = v.identity_match_submit(request=r, claims={f: HELD[f] for f in PRIVATE})
    r.refresh_from_db()
    if regime == "ccpa":  # §7062(c) unmet → §7024(a): answered as a request for categories
        assert result.verified and result.downgraded and r.request_type == "access"
    else:  # no declaration is asked for: three points verify the copy itself
        assert result.verified and not result.downgraded and r.request_type == "access_specific"


@pytest.mark.parametrize("regime", ["gdpr", "other"])
def test_outside_california_too_few_points_are_not_answered_as_categories(customer, regime):
    # §7024(a) is a CCPA rule: a GDPR copy is not silently reduced to the categories of data.
    r = _at_identity_step(request_type="access_specific", regime=regime)
    result = v.identity_match_submit(request=r, claims={"phone": HELD["phone"]})
    r.refresh_from_db()
    assert not result.verified and r.request_type == "access_specific" and r.status == Status.AWAITING_VERIFICATION
