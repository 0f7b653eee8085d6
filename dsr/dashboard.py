"""The privacy officer's dashboard at /dashboard/: the queue, a request's page with its actions,
bulk actions, reports and charts. Views validate input and call the one service for each action;
staff only, with per-role permissions and (where required) two-factor authentication."""

from functools import wraps

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from dsr import reports, selectors
from dsr.csv_export import csv_writer
from dsr.deadlines import business_today
from dsr.errors import DsrError
from dsr.models import (
    Channel,
    DataSubjectRequest,
    DenialReason,
    Outcome,
    Regime,
    RequestType,
    Status,
)
from dsr.services import clock_events, staff_actions
from dsr.services.audit import Actor
from dsr.services.tokens import NAME_MAX_LENGTH, api_token_create, api_token_revoke
from dsr.validators import single_line

PAGE_SIZE = 50


def staff_required(permission: str):
    """Signed in, verified with a second factor where required, and holding `permission`."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if settings.DSR_REQUIRE_2FA and not user.is_verified():
                return redirect(f"{reverse('dsr-auth:otp')}?next={request.get_full_path()}")
            if not user.has_perm(permission):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


# --- The queue -------------------------------------------------------------------------------------


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("open", "Open"), ("all", "All"), *Status.choices], required=False)
    type = forms.ChoiceField(choices=[("", "Any type"), *RequestType.choices], required=False)
    regime = forms.ChoiceField(choices=[("", "Any regime"), *Regime.choices], required=False)
    channel = forms.ChoiceField(choices=[("", "Any channel"), *Channel.choices], required=False)
    assignee = forms.CharField(required=False, max_length=150, help_text="me, none or a username")
    due_within = forms.IntegerField(required=False, min_value=0, max_value=365, label="Due within (days)")
    overdue = forms.BooleanField(required=False)
    flagged = forms.BooleanField(required=False)
    q = forms.CharField(required=False, max_length=254, label="Reference, email or name")
    sort = forms.ChoiceField(
        choices=[("due", "Deadline, soonest first"), ("-due", "Deadline, latest first"), ("-received", "Newest"),
                 ("received", "Oldest"), ("reference", "Reference")],
        required=False,
    )


def _queue(request):
    form = QueueFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    return form, filters, selectors.queue_requests(filters=filters, user=request.user)


@staff_required("dsr.view_datasubjectrequest")
def queue(request):
    form, filters, qs = _queue(request)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    officers = get_user_model().objects.filter(groups__permissions__codename="work_requests", is_active=True).distinct().order_by("username")
    return render(request, "dashboard/queue.html", {
        "form": form, "page": page, "today": business_today(), "counts": selectors.queue_counts(user=request.user),
        "query": params.urlencode(), "officers": officers, "can_work": request.user.has_perm("dsr.work_requests"),
    })


QUEUE_CSV_HEADER = ["reference", "type", "regime", "channel", "status", "email", "full_name", "received_at",
                    "acknowledge_by", "respond_by", "days_left", "assignee", "flagged"]


class _Echo:
    def write(self, value):
        return value


@staff_required("dsr.view_datasubjectrequest")
def queue_csv(request):
    """The queue as filtered, as CSV, streamed so that a large export does not fill memory."""
    _, _, qs = _queue(request)
    today = business_today()
    writer = csv_writer(_Echo())

    def rows():
        yield writer.writerow(QUEUE_CSV_HEADER)
        for r in qs.iterator(chunk_size=2000):
            yield writer.writerow([
                r.reference, r.request_type, r.regime, r.channel, r.status, r.email, r.full_name,
                r.received_at.isoformat(), r.acknowledge_by or "", r.respond_by,
                (r.respond_by - today).days if r.is_open else "", r.assignee.username if r.assignee else "",
                "yes" if r.flagged_at else "",
            ])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="dsr-queue-{today.isoformat()}.csv"'
    return response


# --- Bulk actions ----------------------------------------------------------------------------------


@require_POST
@staff_required("dsr.work_requests")
def queue_bulk(request):
    references = request.POST.getlist("selected")[:500]
    action = request.POST.get("bulk_action")
    actor = Actor.staff(request.user)
    done, refused = 0, []
    targets = list(DataSubjectRequest.objects.filter(reference__in=references))
    assignee = None
    if action == "assign":
        username = request.POST.get("assignee", "")
        assignee = get_user_model().objects.filter(username=username).first() if username else None
        if username and assignee is None:
            refused.append(f"no user '{username}'")
            targets = []
    for obj in targets:
        try:
            if action == "assign":
                staff_actions.request_assign(request=obj, actor=actor, assignee=assignee)
            elif action == "duplicate":
                staff_actions.request_cancel(request=obj, actor=actor, reason="Closed as a duplicate of another request.")
            elif action == "spam":
                staff_actions.request_cancel(request=obj, actor=actor, reason="Closed as spam: not a genuine request.")
            else:
                raise DsrError("Choose a bulk action.")
            done += 1
        except DsrError as exc:
            refused.append(f"{obj.reference}: {exc.message}")
    request.session["dashboard_notice"] = f"{done} request(s) updated." + (f" Not done: {'; '.join(refused)}" if refused else "")
    return redirect(f"{reverse('dashboard:queue')}?{request.POST.get('query', '')}")


# --- A request -------------------------------------------------------------------------------------


class ActionForm(forms.Form):
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)


class NoteForm(ActionForm):
    note = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Note on the evidence")


class MessageForm(ActionForm):
    message = forms.CharField(max_length=10000, widget=forms.Textarea(attrs={"rows": 4}), label="Message to the requester")


class AskForm(MessageForm):
    for_identity = forms.BooleanField(required=False, label="This is about their identity (the GDPR clock may pause)")
    id_document = forms.BooleanField(required=False, label="Ask for a copy of a government ID (deleted after the decision)")


class ReasonForm(ActionForm):
    reason = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 2}), label="Reason")


class ExtendForm(ActionForm):
    reason = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 3}), label="Reason (the requester will read it)")


class DenyForm(MessageForm):
    reason_category = forms.ChoiceField(choices=DenialReason.choices, label="Reason category")


class CompleteForm(MessageForm):
    outcome = forms.ChoiceField(choices=[(Outcome.COMPLIED, "Done in whole"), (Outcome.COMPLIED_IN_PART, "Done in part (say what was kept and why)")])


class InternalNoteForm(ActionForm):
    text = forms.CharField(max_length=10000, widget=forms.Textarea(attrs={"rows": 3}), label="Internal note (staff only)")


class AssignForm(ActionForm):
    assignee = forms.CharField(max_length=150, required=False, validators=[single_line], label="Assign to (username; blank to unassign)")


def _assign(obj, actor, d):
    username = d["assignee"].strip()
    user = get_user_model().objects.filter(username=username).first() if username else None
    if username and user is None:
        raise DsrError(f"There is no user '{username}'.")
    return staff_actions.request_assign(request=obj, actor=actor, assignee=user)


# name: (label, form, service call, permission, what the confirmation says)
ACTIONS = {
    "verify": ("Verify identity", NoteForm, lambda o, a, d: staff_actions.request_verify(request=o, actor=a, note=d["note"]),
               "dsr.work_requests", "Record the requester's identity as verified. The requester is told by email."),
    "ask": ("Ask for information", AskForm, lambda o, a, d: staff_actions.request_information_ask(
                request=o, actor=a, message=d["message"], for_identity=d["for_identity"], id_document=d["id_document"]),
            "dsr.work_requests", "The requester will read this message and can answer on their status page."),
    "extend": ("Extend the deadline", ExtendForm, lambda o, a, d: clock_events.request_extend(request=o, actor=a, reason=d["reason"]),
               "dsr.work_requests", "Extend once: CCPA by 45 days, GDPR by two months. The requester reads the reason."),
    "approve": ("Approve and start work", NoteForm, lambda o, a, d: staff_actions.request_approve(request=o, actor=a, note=d["note"]),
                "dsr.work_requests", "Start fulfilling the request. The requester is told work has started."),
    "complete": ("Mark done", CompleteForm, lambda o, a, d: staff_actions.request_complete(request=o, actor=a, message=d["message"], outcome=d["outcome"]),
                 "dsr.work_requests", "Close the request as done. The requester will read your summary."),
    "deny": ("Deny", DenyForm, lambda o, a, d: staff_actions.request_deny(request=o, actor=a, reason_category=d["reason_category"], message=d["message"]),
             "dsr.work_requests", "Refuse the request. The requester will read your message word for word; GDPR requesters are also told of their right to complain."),
    "cancel": ("Cancel", ReasonForm, lambda o, a, d: staff_actions.request_cancel(request=o, actor=a, reason=d["reason"]),
               "dsr.work_requests", "Cancel the request (withdrawn, duplicate). The requester is told, with the reason."),
    "reopen": ("Reopen", ReasonForm, lambda o, a, d: staff_actions.request_reopen(request=o, actor=a, reason=d["reason"]),
               "dsr.work_requests", "Reopen a closed request. The requester is told, with the reason."),
    "message": ("Message the requester", MessageForm, lambda o, a, d: staff_actions.request_message_send(request=o, actor=a, message=d["message"]),
                "dsr.work_requests", "Send this message to the requester by email. The status does not change."),
    "assign": ("Assign", AssignForm, _assign, "dsr.work_requests", "Give the request to this officer, who is told by email."),
    "note": ("Add an internal note", InternalNoteForm, lambda o, a, d: staff_actions.request_note_add(request=o, actor=a, text=d["text"]),
             "dsr.comment_requests", "Add a note to the timeline. Only staff see it."),
}


def _request_or_404(reference):
    try:
        return selectors.request_for_dashboard(reference=reference)
    except DataSubjectRequest.DoesNotExist:
        raise Http404("No such request") from None


def _clock(obj, today):
    return {
        "days_left": (obj.respond_by - today).days,
        "paused": any(p.ended_at is None for p in obj.pauses.all()),
        "overdue": obj.is_open and obj.respond_by < today,
    }


@staff_required("dsr.view_datasubjectrequest")
def request_page(request, reference, forms_by_action=None):
    obj = _request_or_404(reference)
    today = business_today()
    user = request.user
    available = [
        (name, label, (forms_by_action or {}).get(name) or form_class(prefix=name))
        for name, (label, form_class, _, permission, _) in ACTIONS.items() if user.has_perm(permission)
    ]
    return render(request, "dashboard/request.html", {
        "req": obj, "today": today, "clock": _clock(obj, today), "actions": available,
        "notice": request.session.pop("dashboard_notice", ""),
    }, status=400 if forms_by_action else 200)


@require_POST
def request_action(request, reference, action):
    if action not in ACTIONS:
        raise Http404("No such action")
    label, form_class, call, permission, warning = ACTIONS[action]

    @staff_required(permission)
    def run(request):
        obj = _request_or_404(reference)
        form = form_class(request.POST, prefix=action)
        if not form.is_valid():
            return request_page(request, reference, forms_by_action={action: form})
        if not form.cleaned_data.get("confirmed"):
            # A confirmation page with what will happen, working without JavaScript.
            return render(request, "dashboard/confirm.html", {
                "req": obj, "action": action, "label": label, "warning": warning, "form": form,
                "fields": [(form[name].label, value) for name, value in form.cleaned_data.items() if name != "confirmed" and value not in ("", None, False)],
            })
        try:
            call(obj, Actor.staff(request.user), form.cleaned_data)
        except DsrError as exc:
            form.add_error(None, exc.message)
            return request_page(request, reference, forms_by_action={action: form})
        request.session["dashboard_notice"] = f"{label}: done."
        return redirect("dashboard:request", reference=reference)

    return run(request)


# --- Reports ---------------------------------------------------------------------------------------


def _year(request) -> int:
    try:
        year = int(request.GET.get("year", ""))
    except ValueError:
        year = business_today().year
    return min(max(year, 2020), business_today().year + 1)


@staff_required("dsr.view_datasubjectrequest")
def report_page(request):
    year = _year(request)
    tables = reports.metrics_by_regime(year)
    return render(request, "dashboard/reports.html", {
        "year": year, "years": range(business_today().year, 2021, -1), "rows": tables[reports.METRICS_7102_REGIME],
        # Not §7102: the same measures for the requests under each other regime.
        "other_tables": [(regime, Regime(regime).label, tables[regime]) for regime in reports.OTHER_REGIMES],
        "charts": [reports.weekly_requests_chart(), reports.on_time_chart(), reports.open_by_days_left_chart()],
        "denial_columns": reports.DENIAL_COLUMNS,
    })


@staff_required("dsr.view_datasubjectrequest")
def report_csv(request):
    """The §7102 figures (CCPA requests) by default; `?regime=gdpr` or `other` for that regime's own
    table, which is not part of the §7102 report."""
    year = _year(request)
    regime = request.GET.get("regime") or reports.METRICS_7102_REGIME
    if regime not in Regime.values:
        return HttpResponse(f"regime must be one of: {', '.join(Regime.values)}.", status=400, content_type="text/plain")
    name = f"dsr-metrics-{year}.csv" if regime == reports.METRICS_7102_REGIME else f"dsr-metrics-{regime}-{year}-not-7102.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv_writer(response)
    writer.writerow(reports.METRIC_CSV_HEADER)
    writer.writerows(reports.metric_csv_rows(reports.metrics_for_year(year, regime=regime)))
    return response


# --- The user's own API tokens ---------------------------------------------------------------------

TOKEN_DAY_CHOICES = (7, 30, 90, 180, 365)


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_LENGTH, label="Name (what or who will use it)")
    days = forms.TypedChoiceField(coerce=int, label="Expires after")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        days = sorted({*TOKEN_DAY_CHOICES, settings.DSR_API_TOKEN_DAYS})
        self.fields["days"].choices = [(d, f"{d} days") for d in days]
        self.fields["days"].initial = settings.DSR_API_TOKEN_DAYS


def _tokens_render(request, *, form, created=None, revoking=None, status=200):
    response = render(request, "dashboard/tokens.html", {
        "form": form, "tokens": selectors.api_tokens_of(user=request.user), "created": created, "revoking": revoking,
        "now": timezone.now(), "notice": request.session.pop("dashboard_notice", ""),
    }, status=status)
    # A new key is on this page once: no cache may keep it.
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET", "POST"])
@staff_required("dsr.work_requests")
def tokens_page(request):
    """The signed-in user's own API tokens: list, create (the key shown once), revoke."""
    form = TokenCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            token, key = api_token_create(user=request.user, name=form.cleaned_data["name"], days=form.cleaned_data["days"])
        except DsrError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            return _tokens_render(request, form=TokenCreateForm(), created={"token": token, "key": key})
    return _tokens_render(request, form=form, status=400 if form.errors else 200)


@require_POST
@staff_required("dsr.work_requests")
def token_revoke(request, token_id):
    # Only the user's own tokens: another user's id is as unknown as a made-up one.
    token = selectors.api_tokens_of(user=request.user).filter(token_key=token_id).first()
    if token is None:
        raise Http404("No such token")
    if request.POST.get("confirmed") != "True":
        return _tokens_render(request, form=TokenCreateForm(), revoking=token)
    api_token_revoke(user=request.user, token_id=token.token_key)
    request.session["dashboard_notice"] = f"Token {token.token_key} ({token.name}) revoked: it no longer works."
    return redirect("dashboard:tokens")


@require_http_methods(["GET"])
def home(request):
    return redirect("dashboard:queue")

