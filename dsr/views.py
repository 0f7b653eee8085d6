"""Server-rendered pages: the public form, its confirmation, the requester's status page, and the
staff list. Views validate input and call one service."""

import sys

from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from dsr import hooks, identity, selectors
from dsr.api.problems import DATABASE_RETRY_AFTER_SECONDS, is_database_unavailable, problem_response_outside_drf
from dsr.dashboard import staff_required
from dsr.deadlines import business_today, deadlines_for
from dsr.errors import DsrError, InvalidInput
from dsr.event_types import EventType
from dsr.forms import CodeForm, IdentityForm, PublicRequestForm, ReauthForm, ReplyForm
from dsr.models import AccessPeriod, DataSubjectRequest, Language, RequestDocument, Status
from dsr.ratelimit import client_ip, rate_limit_hit
from dsr.services import intake, verification
from dsr.services.documents import document_content_type, document_download_name
from dsr.services.unsubscribe import unsubscribe_record_from_token

CONFIRMATION_SESSION_KEY = "dsr_submitted_reference"


def _deadline_preview() -> dict:
    """What each regime's clock promises for a request made today (shown before submitting)."""
    today = business_today()
    return {
        "ccpa": deadlines_for(regime="ccpa", request_type="access", received_on=today).respond_by,
        "gdpr": deadlines_for(regime="gdpr", request_type="access", received_on=today).respond_by,
        "opt_out": deadlines_for(regime="ccpa", request_type="opt_out_sale", received_on=today).respond_by,
        "marketing": deadlines_for(regime="gdpr", request_type="opt_out_marketing", received_on=today).respond_by,
    }


def _gpc(request) -> bool:
    return request.headers.get("Sec-GPC", "").strip() == "1"


def _language(request) -> str:
    language = (translation.get_language() or "en")[:2]
    return language if language in Language.values else "en"


@require_http_methods(["GET", "POST"])
def request_form(request):
    form = PublicRequestForm(request.POST or None, request.FILES or None)
    context = {"form": form, "deadlines": _deadline_preview(), "gpc": _gpc(request)}
    if request.method == "POST":
        if request.POST.get("website"):
            # The honeypot was filled in: answer as for any submission, record nothing.
            request.session[CONFIRMATION_SESSION_KEY] = None
            return redirect("dsr:request-submitted")
        wait = rate_limit_hit(scope="form_ip", key=client_ip(request)) or rate_limit_hit(
            scope="form_email", key=request.POST.get("email", "").strip()
        )
        if wait:
            return _too_many(request, wait)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        documents = []
        if data.get("evidence") and data["request_type"] == "rectification":
            documents.append((RequestDocument.Kind.EVIDENCE, data["evidence"]))
        if data.get("is_agent") and data.get("agent_document"):
            documents.append((RequestDocument.Kind.AGENT_AUTHORISATION, data["agent_document"]))
        intake_details = intake.IntakeDetails(
            relationship=data["relationship"],
            access_period=data.get("access_period") or AccessPeriod.LAST_12_MONTHS,
            corrections=tuple(data["corrections"]) if data["request_type"] == "rectification" else (),
            agent_name=data["agent_name"] if data.get("is_agent") else "",
            agent_email=data["agent_email"] if data.get("is_agent") else "",
            agent_power_of_attorney=bool(data.get("is_agent") and data.get("agent_power_of_attorney")),
            gpc_signal=_gpc(request),
            documents=tuple(documents),
        )
        try:
            created = intake.request_submit_with_gpc(
                request_type=data["request_type"],
                regime=data["regime"],
                email=data["email"],
                full_name=data["full_name"],
                details=data["details"],
                language=_language(request),
                intake=intake_details,
            )
        except DsrError as exc:
            field = {"corrections": "correction_0_field", "documents": "evidence"}.get(exc.field or "", exc.field)
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            request.session[CONFIRMATION_SESSION_KEY] = created.pk
            return redirect("dsr:request-submitted")
    return render(request, "public/request_form.html", context, status=400 if form.errors else 200)


def request_submitted(request):
    if CONFIRMATION_SESSION_KEY not in request.session:
        return redirect("dsr:request-form")
    pk = request.session.get(CONFIRMATION_SESSION_KEY)
    obj = DataSubjectRequest.objects.filter(pk=pk).first() if pk else None
    # The same page whatever happened to the submission (duplicate, forwarded, honeypot): it never
    # tells whether the email is known.
    return render(request, "public/request_submitted.html", {"req": obj})


def _unknown(request):
    # Reveals nothing: not whether the token ever existed, nor anything about a request.
    return render(request, "public/status_unknown.html", status=404)


def server_error(request):
    """Django's 500 handler. A database that is away (a restart, a failover) answers 503 with
    Retry-After — a page saying to try again, or a problem response under /api/ — so a client
    knows to come back instead of seeing an error page."""
    exc = sys.exc_info()[1]
    if request.path.startswith("/api/"):
        return problem_response_outside_drf(exc)
    if is_database_unavailable(exc):
        response = render(request, "public/unavailable.html", status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
    return defaults.server_error(request)


def _too_many(request, retry_after: int):
    response = render(request, "public/too_many.html", {"minutes": max(1, round(retry_after / 60))}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def _document_requested(obj) -> bool:
    asked = [e for e in obj.events.all() if e.event_type == EventType.INFORMATION_REQUESTED]
    return bool(asked and asked[-1].data.get("id_document"))


def _account_holder(request, obj) -> bool:
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and user.email and user.email.lower() == obj.email.lower())


def _status_context(
    obj, *, request=None, code_form=None, identity_form=None, reply_form=None, reauth_form=None, notice=""
):
    needs_email = obj.status == Status.AWAITING_VERIFICATION and not obj.email_verified_at
    needs_identity = obj.status == Status.AWAITING_VERIFICATION and obj.email_verified_at is not None
    events = list(obj.events.all())
    check = identity.identity_check_for(obj)
    return {
        "req": obj,
        "events": events,
        "needs_email": needs_email,
        "needs_identity": needs_identity,
        # The per-request cap was reached (or nothing is left to ask): the team reviews it by hand.
        "identity_review": needs_identity and (verification.identity_review_needed(events) or not check.claim_fields),
        "declaration": check.declaration,
        "needs_reply": obj.status == Status.AWAITING_REQUESTER,
        "code_form": code_form or CodeForm(),
        "identity_form": identity_form or _identity_form(obj),
        "points_required": check.points_required,
        "reply_form": reply_form or ReplyForm(document_requested=_document_requested(obj)),
        "account_holder": request is not None
        and obj.status == Status.AWAITING_VERIFICATION
        and _account_holder(request, obj),
        "reauth_form": reauth_form or ReauthForm(),
        "notice": notice,
        "panels": hooks.panels_render("status_page_panel", request, obj) if request is not None else [],
    }


def _identity_form(obj, data=None) -> IdentityForm:
    check = identity.identity_check_for(obj)
    return IdentityForm(data, claim_fields=check.claim_fields, declaration_required=check.declaration)


@require_http_methods(["GET", "POST"])
def request_status(request, token):
    obj = selectors.request_by_token(token=token)
    if obj is None:
        return _unknown(request)
    # The request keeps its language on its own page, whatever the browser says.
    request.LANGUAGE_CODE = obj.language
    with translation.override(obj.language):
        return _request_status(request, obj)


def _request_status(request, obj):
    notice = request.session.pop(f"dsr_notice_{obj.pk}", "")
    if request.method == "GET":
        return render(request, "public/request_status.html", _status_context(obj, request=request, notice=notice))
    action = request.POST.get("action")
    wait = rate_limit_hit(scope="verify_ip", key=client_ip(request))
    if wait:
        return _too_many(request, wait)
    if action == "code":
        code_form = CodeForm(request.POST)
        if code_form.is_valid():
            code_result = verification.challenge_confirm_code(request=obj, code=code_form.cleaned_data["code"])
            if code_result.ok:
                return _back_to_status(request, obj, _("Thank you: your email address is confirmed."))
            code_form.add_error("code", code_result.message)
        return render(
            request,
            "public/request_status.html",
            _status_context(obj, request=request, code_form=code_form),
            status=400,
        )
    if action == "resend":
        wait = rate_limit_hit(scope="resend_request", key=str(obj.pk))
        if wait:
            return _too_many(request, wait)
        try:
            verification.challenge_resend(request=obj)
        except DsrError:
            return _back_to_status(request, obj, "")
        return _back_to_status(request, obj, _("We have sent you a new link and code. Earlier ones no longer work."))
    if action == "identity":
        identity_form = _identity_form(obj, request.POST)
        if identity_form.is_valid():
            try:
                match = verification.identity_match_submit(
                    request=obj,
                    claims=identity_form.cleaned_data["claims"],
                    declaration_name=identity_form.cleaned_data.get("declaration_name", ""),
                    declared=identity_form.cleaned_data.get("declared", False),
                )
            except DsrError:
                return _back_to_status(request, obj, "")
            if match.verified and match.downgraded:
                return _back_to_status(
                    request,
                    obj,
                    _(
                        "We could confirm who you are well enough to tell you what kinds of data we hold, but not to "
                        "send a copy of the data itself. We will answer your request as a request for categories."
                    ),
                )
            if match.verified:
                return _back_to_status(
                    request, obj, _("Thank you: we have confirmed who you are and are working on your request.")
                )
            if match.review:
                return _back_to_status(request, obj, "")
            identity_form.add_error(
                None,
                _(
                    "These details did not match what we hold. Check them and try again, "
                    "or write to us and we will help."
                ),
            )
            identity_form.add_error(
                None,
                ngettext("You can try %(left)d more time.", "You can try %(left)d more times.", match.attempts_left)
                % {"left": match.attempts_left},
            )
        return render(
            request,
            "public/request_status.html",
            _status_context(obj, request=request, identity_form=identity_form),
            status=400,
        )
    if action == "reply":
        reply_form = ReplyForm(request.POST, request.FILES, document_requested=_document_requested(obj))
        if reply_form.is_valid():
            try:
                intake.request_requester_reply(
                    request=obj,
                    message=reply_form.cleaned_data["message"],
                    document=reply_form.cleaned_data.get("document"),
                )
            except InvalidInput as exc:
                reply_form.add_error("document" if exc.field == "document" else "message", exc.message)
            except DsrError:
                return _back_to_status(request, obj, "")
            else:
                return _back_to_status(request, obj, _("Thank you: we have received your answer."))
        return render(
            request,
            "public/request_status.html",
            _status_context(obj, request=request, reply_form=reply_form),
            status=400,
        )
    if action == "reauth":
        reauth_form = ReauthForm(request.POST)
        if reauth_form.is_valid():
            try:
                ok = verification.account_reauthenticate(
                    request=obj, user=request.user, password=reauth_form.cleaned_data["password"]
                )
            except DsrError:
                return _back_to_status(request, obj, "")
            if ok:
                return _back_to_status(
                    request, obj, _("Thank you: we have confirmed who you are and are working on your request.")
                )
            reauth_form.add_error("password", _("That password is not right."))
        return render(
            request,
            "public/request_status.html",
            _status_context(obj, request=request, reauth_form=reauth_form),
            status=400,
        )
    return _back_to_status(request, obj, "")


def _back_to_status(request, obj, notice):
    if notice:
        request.session[f"dsr_notice_{obj.pk}"] = str(notice)
    return redirect("dsr:request-status", token=obj.public_token)


@require_http_methods(["GET", "POST"])
def email_confirm(request, token):
    """GET shows a button; only the POST confirms, because mail scanners open links."""
    if request.method == "POST":
        wait = rate_limit_hit(scope="verify_ip", key=client_ip(request))
        if wait:
            return _too_many(request, wait)
        try:
            obj = verification.challenge_confirm_link(token=token)
        except verification.ChallengeRefused as exc:
            return render(request, "public/email_confirm.html", {"error": exc.message}, status=400)
        with translation.override(obj.language):
            return _back_to_status(request, obj, _("Thank you: your email address is confirmed."))
    return render(request, "public/email_confirm.html", {})


def staff_request_list(request):
    return redirect("dashboard:queue")


def staff_request_detail(request, reference):
    return redirect("dashboard:request", reference=reference)


@staff_required("dsr.work_requests")
def staff_document_download(request, reference, document_id):
    """Requesters' files are private: only privacy staff reach them, and only through here."""
    document = (
        RequestDocument.objects.select_related("request")
        .filter(pk=document_id, request__reference=reference, deleted_at__isnull=True)
        .first()
    )
    if document is None or not document.file:
        raise Http404("No such document")
    # Served under a name the product makes, with the checked type: never the sender's name.
    response = FileResponse(
        document.file.open("rb"),
        content_type=document_content_type(document),
        as_attachment=True,
        filename=document_download_name(document),
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    """RFC 8058 one-click unsubscribe. A mail client POSTs "List-Unsubscribe=One-Click" with no
    cookies (hence no CSRF token); a person who opens the link gets a page with a button."""
    record = unsubscribe_record_from_token(token)
    if record is None:
        # Forged, expired or of the earlier format: say how to opt out anyway, reveal nothing.
        return render(request, "public/unsubscribed.html", {"invalid": True}, status=404)
    if request.method == "POST":
        # A repeat (the mail client's POST, then the person's click) is answered the same way and
        # changes nothing.
        intake.unsubscribe_use(record=record, language=_language(request))
        if request.POST.get("List-Unsubscribe") == "One-Click":
            return HttpResponse(status=200)
        return render(request, "public/unsubscribed.html", {"done": True})
    return render(request, "public/unsubscribed.html", {"done": record.used_at is not None})
