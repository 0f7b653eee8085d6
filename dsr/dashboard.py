"""The privacy officer's dashboard at /dashboard/: the queue, a request's page with its actions,
bulk actions, reports and charts. Views validate input and call the one service for each action;
staff only, with per-role permissions and (where required) two-factor authentication."""

import functools
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

from dsr import actions, hooks, reports, selectors
from dsr.csv_export import csv_writer
from dsr.deadlines import business_today
from dsr.errors import DsrError
from dsr.models import (
    Channel,
    DataSubjectRequest,
    Regime,
    RequestType,
    Status,
)
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
        choices=[
            ("due", "Deadline, soonest first"),
            ("-due", "Deadline, latest first"),
            ("-received", "Newest"),
            ("received", "Oldest"),
            ("reference", "Reference"),
        ],
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
    officers = (
        get_user_model()
        .objects.filter(groups__permissions__codename="work_requests", is_active=True)
        .distinct()
        .order_by("username")
    )
    return render(
        request,
        "dashboard/queue.html",
        {
            "form": form,
            "page": page,
            "today": business_today(),
            "counts": selectors.queue_counts(user=request.user),
            "query": params.urlencode(),
            "officers": officers,
            "can_work": request.user.has_perm("dsr.work_requests"),
            "bulk_actions": actions.BULK_ACTIONS.values(),
        },
    )


QUEUE_CSV_HEADER = [
    "reference",
    "type",
    "regime",
    "channel",
    "status",
    "email",
    "full_name",
    "received_at",
    "acknowledge_by",
    "respond_by",
    "days_left",
    "assignee",
    "flagged",
]


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
            yield writer.writerow(
                [
                    r.reference,
                    r.request_type,
                    r.regime,
                    r.channel,
                    r.status,
                    r.email,
                    r.full_name,
                    r.received_at.isoformat(),
                    r.acknowledge_by or "",
                    r.respond_by,
                    (r.respond_by - today).days if r.is_open else "",
                    r.assignee.username if r.assignee else "",
                    "yes" if r.flagged_at else "",
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="dsr-queue-{today.isoformat()}.csv"'
    return response


# --- Bulk actions ----------------------------------------------------------------------------------


@require_POST
@staff_required("dsr.work_requests")
def queue_bulk(request):
    """An entry of the action table on each selected request, with part of its input fixed (the
    reason for closing) or taken from the queue's form (the assignee)."""
    references = request.POST.getlist("selected")[:500]
    bulk = actions.BULK_ACTIONS.get(request.POST.get("bulk_action", ""))
    done, refused = 0, []
    if bulk is None:
        refused.append("Choose a bulk action.")
    else:
        entry = actions.ACTIONS[bulk.action]
        if not request.user.has_perm(entry.permission):
            raise PermissionDenied
        data = {f.name: request.POST.get(f.name, "") for f in entry.input.fields} | dict(bulk.fixed)
        form = action_form(entry.input)(data)
        try:
            if not form.is_valid():
                raise DsrError(" ".join(str(e) for errors in form.errors.values() for e in errors))
            arguments = entry.prepare(form.cleaned_data)
        except DsrError as exc:
            refused.append(exc.message)
        else:
            actor = Actor.staff(request.user)
            for obj in DataSubjectRequest.objects.filter(reference__in=references):
                try:
                    entry.run(request=obj, actor=actor, arguments=arguments)
                    done += 1
                except DsrError as exc:
                    refused.append(f"{obj.reference}: {exc.message}")
    request.session["dashboard_notice"] = f"{done} request(s) updated." + (
        f" Not done: {'; '.join(refused)}" if refused else ""
    )
    return redirect(f"{reverse('dashboard:queue')}?{request.POST.get('query', '')}")


# --- A request -------------------------------------------------------------------------------------


class ActionForm(forms.Form):
    """An action's form: its fields from the action table, and the confirmation step."""

    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)


def _action_form_field(spec: actions.InputField) -> forms.Field:
    if isinstance(spec, actions.Flag):
        return forms.BooleanField(required=False, label=spec.label)
    if isinstance(spec, actions.Choice):
        labels = dict(spec.form_labels)
        return forms.ChoiceField(
            choices=[(v, labels.get(v, label)) for v, label in spec.choices],
            label=spec.label,
            initial=spec.default or None,
        )
    return forms.CharField(
        max_length=spec.max_length,
        required=not spec.blank,
        validators=[single_line] if spec.one_line else [],
        label=spec.label,
        widget=forms.Textarea(attrs={"rows": spec.rows}) if spec.rows else None,
    )


@functools.cache
def action_form(body: actions.Input) -> type[ActionForm]:
    """The form for an action's input, built from its entry in dsr.actions (the API builds its
    serializer from the same fields)."""
    fields = {spec.name: _action_form_field(spec) for spec in body.fields}
    return type(f"{body.name}Form", (ActionForm,), {"__module__": __name__, **fields})


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
    forms_by_action = forms_by_action or {}
    # What the user may do in the request's state (dsr.actions), and an action just refused, with why.
    offered = {a.name for a in actions.actions_available(obj, request.user)} | set(forms_by_action)
    shown = [
        (entry.name, entry.label, forms_by_action.get(entry.name) or action_form(entry.input)(prefix=entry.name))
        for entry in actions.ACTIONS.values()
        if entry.name in offered
    ]
    return render(
        request,
        "dashboard/request.html",
        {
            "req": obj,
            "today": today,
            "clock": _clock(obj, today),
            "actions": shown,
            "notice": request.session.pop("dashboard_notice", ""),
            "panels": hooks.panels_render("staff_request_panel", request, obj),
        },
        status=400 if forms_by_action else 200,
    )


@require_POST
def request_action(request, reference, action):
    entry = actions.ACTIONS.get(action)
    if entry is None:
        raise Http404("No such action")

    @staff_required(entry.permission)
    def run(request):
        obj = _request_or_404(reference)
        form = action_form(entry.input)(request.POST, prefix=action)
        if not form.is_valid():
            return request_page(request, reference, forms_by_action={action: form})
        if not form.cleaned_data.get("confirmed"):
            # A confirmation page with what will happen, working without JavaScript.
            return render(
                request,
                "dashboard/confirm.html",
                {
                    "req": obj,
                    "action": action,
                    "label": entry.label,
                    "warning": entry.confirm,
                    "form": form,
                    "fields": [
                        (form[name].label, value)
                        for name, value in form.cleaned_data.items()
                        if name != "confirmed" and value not in ("", None, False)
                    ],
                },
            )
        try:
            entry.run(request=obj, actor=Actor.staff(request.user), arguments=entry.prepare(form.cleaned_data))
        except DsrError as exc:
            form.add_error(None, exc.message)
            return request_page(request, reference, forms_by_action={action: form})
        request.session["dashboard_notice"] = f"{entry.label}: done."
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
    return render(
        request,
        "dashboard/reports.html",
        {
            "year": year,
            "years": range(business_today().year, 2021, -1),
            "rows": tables[reports.METRICS_7102_REGIME],
            # Not §7102: the same measures for the requests under each other regime.
            "other_tables": [(regime, Regime(regime).label, tables[regime]) for regime in reports.OTHER_REGIMES],
            "charts": [reports.weekly_requests_chart(), reports.on_time_chart(), reports.open_by_days_left_chart()],
            "denial_columns": reports.DENIAL_COLUMNS,
        },
    )


@staff_required("dsr.view_datasubjectrequest")
def report_csv(request):
    """The §7102 figures (CCPA requests) by default; `?regime=gdpr` or `other` for that regime's own
    table, which is not part of the §7102 report."""
    year = _year(request)
    regime = request.GET.get("regime") or reports.METRICS_7102_REGIME
    if regime not in Regime.values:
        return HttpResponse(
            f"regime must be one of: {', '.join(Regime.values)}.", status=400, content_type="text/plain"
        )
    name = (
        f"dsr-metrics-{year}.csv"
        if regime == reports.METRICS_7102_REGIME
        else f"dsr-metrics-{regime}-{year}-not-7102.csv"
    )
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
        field = self.fields["days"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [(d, f"{d} days") for d in days]
        self.fields["days"].initial = settings.DSR_API_TOKEN_DAYS


def _tokens_render(request, *, form, created=None, revoking=None, status=200):
    response = render(
        request,
        "dashboard/tokens.html",
        {
            "form": form,
            "tokens": selectors.api_tokens_of(user=request.user),
            "created": created,
            "revoking": revoking,
            "now": timezone.now(),
            "notice": request.session.pop("dashboard_notice", ""),
        },
        status=status,
    )
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
            token, key = api_token_create(
                user=request.user, name=form.cleaned_data["name"], days=form.cleaned_data["days"]
            )
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
