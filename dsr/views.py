"""Server-rendered pages: the public form, its confirmation, the requester's status page, and the
staff list. Views validate input and call one service."""

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import translation
from django.views.decorators.http import require_http_methods

from dsr import selectors
from dsr.errors import DsrError
from dsr.forms import PublicRequestForm
from dsr.models import DataSubjectRequest, Language
from dsr.services import requests as services
from dsr.services.requests import business_today

CONFIRMATION_SESSION_KEY = "dsr_submitted_reference"


@require_http_methods(["GET", "POST"])
def request_form(request):
    form = PublicRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        language = translation.get_language() or "en"
        language = language[:2] if language[:2] in Language.values else "en"
        try:
            created = services.request_submit(
                request_type=form.cleaned_data["request_type"],
                regime=form.cleaned_data["regime"],
                email=form.cleaned_data["email"],
                full_name=form.cleaned_data["full_name"],
                details=form.cleaned_data["details"],
                language=language,
            )
        except DsrError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            request.session[CONFIRMATION_SESSION_KEY] = created.reference
            return redirect("dsr:request-submitted")
    return render(request, "public/request_form.html", {"form": form}, status=400 if form.errors else 200)


def request_submitted(request):
    reference = request.session.get(CONFIRMATION_SESSION_KEY)
    if not reference:
        return redirect("dsr:request-form")
    return render(request, "public/request_submitted.html", {"reference": reference})


def request_status(request, token):
    obj = selectors.request_by_token(token=token)
    if obj is None:
        # Reveals nothing: not whether the token ever existed, nor anything about a request.
        return render(request, "public/status_unknown.html", status=404)
    with translation.override(obj.language):
        return render(request, "public/request_status.html", {"req": obj, "events": obj.events.all()})


@login_required
@permission_required("dsr.work_requests", raise_exception=True)
def staff_request_list(request):
    qs = selectors.requests_list(filters={"status": request.GET.get("status") or None, "search": request.GET.get("q")})
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(request, "staff/request_list.html", {"page": page, "today": business_today(), "q": request.GET.get("q", "")})


@login_required
@permission_required("dsr.work_requests", raise_exception=True)
def staff_request_detail(request, reference):
    try:
        obj = selectors.request_detail(reference=reference)
    except DataSubjectRequest.DoesNotExist:
        raise Http404("No such request") from None
    return render(request, "staff/request_detail.html", {"req": obj, "today": business_today()})
