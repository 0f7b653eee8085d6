"""The requester's access package on their status page (`/r/<token>/`): the panel (the
`status_page_panel` hook), "email me a download code", the form to type it, and the download.
The status link alone never opens the package: a fresh emailed code opens a short grant bound to
this browser's session. Every step is limited by the real client address (dsr.ratelimit), works
without JavaScript (each form posts and comes back to the status page), and another requester's
token — or none — answers the same 404 as the status page."""

from datetime import timedelta

from django.conf import settings
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from dsr import selectors
from dsr.errors import DsrError, TransitionNotAllowed
from dsr.forms import CodeForm
from dsr.fulfilment.forms import StatementForm
from dsr.fulfilment.models import CorrectionStatement
from dsr.fulfilment.services import corrections, packages, runs
from dsr.models import DataSubjectRequest, RequestType, Status
from dsr.ratelimit import client_ip, rate_limit_hit
from dsr.services.audit import Actor


def _grant_key(package) -> str:
    return f"dsr_package_grant_{package.pk}"


def _error_key(obj) -> str:
    return f"dsr_package_error_{obj.pk}"


def status_panel(http_request, obj: DataSubjectRequest) -> str:
    """The `status_page_panel` hook: the download, once the answer is sent; for a rectification
    with a rejected correction, the CCPA statement form (or the statement sent)."""
    if obj.request_type == RequestType.RECTIFICATION:
        return statement_panel(http_request, obj)
    if obj.request_type not in runs.PACKAGE_KINDS or obj.status != Status.COMPLETED:
        return ""
    package = packages.package_for_request(obj)
    if package is None:
        return ""
    grant = packages.package_grant_valid(package=package, grant=http_request.session.get(_grant_key(package), ""))
    if package.purged_at is not None:
        state = "deleted"
    elif package.expires_at <= timezone.now():
        state = "expired"
    elif package.downloads >= package.max_downloads:
        state = "used_up"
    elif grant is not None:
        state = "granted"
    elif packages.package_code_pending(package):
        state = "code_sent"
    else:
        state = "ready"
    return render_to_string(
        "fulfilment/package/status_panel.html",
        {
            "req": obj,
            "package": package,
            "state": state,
            "grant": grant,
            "error": http_request.session.pop(_error_key(obj), ""),
            "code_form": CodeForm(),
            "code_minutes": settings.DSR_PACKAGE_CODE_MINUTES,
            "reissue_until": package.expires_at + timedelta(days=settings.DSR_PACKAGE_REISSUE_DAYS),
            "categories_only": package.kind == "categories",
            "business_contact": settings.DSR_BUSINESS_CONTACT,
        },
        request=http_request,
    )


def _statement_error_key(obj) -> str:
    return f"dsr_statement_error_{obj.pk}"


def statement_panel(http_request, obj: DataSubjectRequest) -> str:
    """CCPA §7023(f): a requester whose correction was rejected may send a statement of up to 250
    words, kept with the record; once sent it is shown back (escaped), never editable."""
    statement = CorrectionStatement.objects.filter(request=obj).first()
    if statement is None and not corrections.statement_allowed(obj):
        return ""
    error_key = _statement_error_key(obj)
    return render_to_string(
        "fulfilment/statement_panel.html",
        {
            "req": obj,
            "statement": statement,
            "error": http_request.session.pop(error_key, ""),
            "form": StatementForm(),
            "max_words": corrections.STATEMENT_MAX_WORDS,
        },
        request=http_request,
    )


def _unknown(request):
    return render(request, "public/status_unknown.html", status=404)


def _too_many(request, retry_after: int):
    response = render(request, "public/too_many.html", {"minutes": max(1, round(retry_after / 60))}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def _back(request, obj, *, notice: str = "", error: str = ""):
    if notice:
        request.session[f"dsr_notice_{obj.pk}"] = str(notice)
    if error:
        request.session[_error_key(obj)] = str(error)
    return redirect(reverse("dsr:request-status", kwargs={"token": obj.public_token}) + "#package")


def _requester_view(handler):
    """Find the request by its status token (404 as the status page for anything else), speak its
    language, and count the attempt against the client's address."""

    def view(request, token):
        obj = selectors.request_by_token(token=token)
        if obj is None:
            return _unknown(request)
        with translation.override(obj.language):
            wait = rate_limit_hit(scope="package_ip", key=client_ip(request))
            if wait:
                return _too_many(request, wait)
            return handler(request, obj)

    view.__name__ = handler.__name__
    view.__doc__ = handler.__doc__
    return view


@require_POST
@_requester_view
def package_code(request, obj):
    """Email me a download code."""
    wait = rate_limit_hit(scope="package_code", key=str(obj.pk))
    if wait:
        return _too_many(request, wait)
    try:
        packages.package_code_send(request=obj)
    except TransitionNotAllowed as refused:
        return _back(request, obj, error=refused.message)
    return _back(request, obj, notice=_("We have emailed you a code. Type it below to download your data."))


@require_POST
@_requester_view
def package_confirm(request, obj):
    """The code from the email: a right one opens the download for this browser, for a short while."""
    form = CodeForm(request.POST)
    if not form.is_valid():
        return _back(request, obj, error=_("Type the code from our email."))
    outcome = packages.package_code_confirm(request=obj, code=form.cleaned_data["code"])
    if not outcome.ok:
        return _back(request, obj, error=outcome.message)
    package = packages.package_for_request(obj)
    request.session[_grant_key(package)] = outcome.grant
    return _back(request, obj, notice=_("Thank you: your download is ready."))


@require_GET
@_requester_view
def package_download(request, obj):
    """The ZIP, decrypted as it streams; counted against the downloads allowed."""
    package = packages.package_for_request(obj)
    if package is None or obj.status != Status.COMPLETED:
        return _unknown(request)
    if packages.package_grant_valid(package=package, grant=request.session.get(_grant_key(package), "")) is None:
        return _back(request, obj, error=_("To download your data, ask for a code first and type it here."))
    try:
        chunks = packages.package_stream(package=package, actor=Actor.requester(obj.email), by=packages.BY_REQUESTER)
    except TransitionNotAllowed as refused:
        return _back(request, obj, error=refused.message)
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{obj.reference}-data.zip"'
    response["Content-Length"] = str(package.bytes)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@_requester_view
def statement_submit(request, obj):
    """The statement form: kept with the record and put on the timeline."""
    form = StatementForm(request.POST)
    if not form.is_valid():
        request.session[_statement_error_key(obj)] = _("Write your statement.")
        return redirect(reverse("dsr:request-status", kwargs={"token": obj.public_token}) + "#statement")
    try:
        corrections.correction_statement_submit(request=obj, text=form.cleaned_data["statement"])
    except DsrError as refused:
        request.session[_statement_error_key(obj)] = str(refused.message)
        return redirect(reverse("dsr:request-status", kwargs={"token": obj.public_token}) + "#statement")
    request.session[f"dsr_notice_{obj.pk}"] = str(_("Thank you: we keep your statement with your request."))
    return redirect(reverse("dsr:request-status", kwargs={"token": obj.public_token}) + "#statement")
