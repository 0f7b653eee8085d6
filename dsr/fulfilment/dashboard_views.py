"""Fulfilment on the staff dashboard: the panel on a request's page (progress, each system's state,
who is still to answer, the package), its buttons (start, retry, switch to the owner, build now,
send the answer), and the data map page. Every view checks role, second factor and permission
(dsr.dashboard.staff_required) and calls one service."""

from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from dsr.dashboard import staff_required
from dsr.errors import DsrError
from dsr.fulfilment import selectors
from dsr.fulfilment.datamap import DataMapError, datamap_load
from dsr.fulfilment.models import CorrectionStatement, RunState, SystemStatus
from dsr.fulfilment.services import corrections, erasure, health, package_staff, propagation, runs
from dsr.models import TYPES_WITHOUT_VERIFICATION, DataSubjectRequest, RequestType
from dsr.services.audit import Actor

WORK = "dsr.work_requests"
VIEW = "dsr.view_datasubjectrequest"
STATUS_LABELS = {
    SystemStatus.PENDING: "Queued",
    SystemStatus.RUNNING: "Searching",
    SystemStatus.DONE: "Done",
    SystemStatus.FAILED: "Failed",
    SystemStatus.WAITING_MANUAL: "Waiting for the owner",
    SystemStatus.SKIPPED: "Skipped",
}
ERASURE_LABELS = {
    SystemStatus.PENDING: "Queued",
    SystemStatus.RUNNING: "Working",
    SystemStatus.PLANNED: "Planned",
    SystemStatus.DONE: "Erased and verified",
    SystemStatus.FAILED: "Failed",
    SystemStatus.SKIPPED: "Skipped",
    SystemStatus.WAITING: "Told to erase; waiting for its confirmation",
}


CORRECTION_LABELS = {
    SystemStatus.PENDING: "Queued",
    SystemStatus.RUNNING: "Working",
    SystemStatus.PLANNED: "Current values read",
    SystemStatus.DONE: "Corrected and read back",
    SystemStatus.FAILED: "Failed",
    SystemStatus.SKIPPED: "Nothing to correct here",
}


def staff_panel(http_request, obj: DataSubjectRequest) -> str:
    """The `staff_request_panel` hook: fulfilment's section of the request page."""
    if obj.request_type == RequestType.ERASURE:
        return erasure_panel(http_request, obj)
    if obj.request_type in propagation.ACTIONS:
        return propagation_panel(http_request, obj)
    if obj.request_type == RequestType.RECTIFICATION:
        return correction_panel(http_request, obj)
    if obj.request_type not in runs.PACKAGE_KINDS:
        return ""
    status = selectors.fulfilment_status(obj)
    finished, total = selectors.progress(status)
    for system in status["systems"]:
        system["label"] = STATUS_LABELS.get(system["status"], system["status"])
        if system["status"] == SystemStatus.RUNNING and system["requested_at"]:
            system["label"] = f"Requested {system['requested_at']:%Y-%m-%d}, waiting for its answer"
    may_work = http_request.user.has_perm(WORK)
    return render_to_string(
        "fulfilment/staff_panel.html",
        {
            "req": obj,
            "status": status,
            "finished": finished,
            "total": total,
            "may_work": may_work,
            "startable": may_work and obj.is_open and obj.verified_at is not None and status["state"] != "running",
            "waiting": [
                s
                for s in status["systems"]
                if s["status"] == SystemStatus.WAITING_MANUAL
                or s["requested_at"]
                and s["status"] == SystemStatus.RUNNING
            ],
        },
        request=http_request,
    )


def erasure_panel(http_request, obj: DataSubjectRequest) -> str:
    """An erasure request's section: each system's plan (rows deleted, masked, kept and why), the
    problems, the approvals, the results; Approve (absent while the plan has problems) and Send the answer."""
    status = selectors.fulfilment_status(obj)
    may_work = http_request.user.has_perm(WORK)
    plan = status["plan"]
    planned = {s["system"]: s for s in (plan or {}).get("systems", [])}
    for system in status["systems"]:
        system["label"] = ERASURE_LABELS.get(system["status"], system["status"])
        told = planned.get(system["system"], {})
        if system["status"] == SystemStatus.DONE and told.get("told"):
            # Told and confirmed: an http system is proved by find again, a manual one by its owner.
            if told.get("kind") == "manual":
                system["label"] = "Erased, confirmed by its owner"
            elif told.get("verified") is None:
                system["label"] = "Confirmed; searching again to verify"
    run = selectors.latest_run(obj)
    already = run is not None and any(a.get("user") == http_request.user.pk for a in run.approvals)
    return render_to_string(
        "fulfilment/erasure_panel.html",
        {
            "req": obj,
            "status": status,
            "plan": plan,
            "may_work": may_work,
            "approvable": may_work
            and obj.is_open
            and status["state"] == RunState.AWAITING_APPROVAL
            and not plan["problems"]
            and not already,
            "answerable": may_work and obj.is_open and status["state"] == RunState.DONE,
            "startable": may_work
            and obj.is_open
            and obj.verified_at is not None
            and status["state"] in ("not_started", RunState.AWAITING_APPROVAL, RunState.FAILED, RunState.CANCELLED),
        },
        request=http_request,
    )


TOLD_LABELS = {
    "told": "Told",
    "waiting": "Waiting for confirmation",
    "confirmed": "Confirmed",
    "failed": "Failed",
}


def propagation_panel(http_request, obj: DataSubjectRequest) -> str:
    """A restriction's or an opt-out's section: each system and recipient told, its state and dates,
    Retry on a failed one, and the start button (opt-outs need no verification, §7060(b))."""
    status = selectors.fulfilment_status(obj)
    may_work = http_request.user.has_perm(WORK)
    told = status["told"] or {"systems": [], "action": ""}
    for system in told["systems"]:
        system["label"] = TOLD_LABELS[system["state"]]
    verified = obj.verified_at is not None or obj.request_type in TYPES_WITHOUT_VERIFICATION
    return render_to_string(
        "fulfilment/propagation_panel.html",
        {
            "req": obj,
            "status": status,
            "told": told,
            "may_work": may_work,
            "startable": may_work
            and obj.is_open
            and verified
            and status["state"] in ("not_started", RunState.CANCELLED),
        },
        request=http_request,
    )


def correction_panel(http_request, obj: DataSubjectRequest) -> str:
    """A rectification request's section: each requested correction beside the current values
    found per system, the evidence, a decision and reason per correction (one form, no script),
    each system's state, and Send the answer; the requester's statement, if they sent one."""
    status = selectors.fulfilment_status(obj)
    may_work = http_request.user.has_perm(WORK)
    for system in status["systems"]:
        system["label"] = CORRECTION_LABELS.get(system["status"], system["status"])
    statement = CorrectionStatement.objects.filter(request=obj).first()
    return render_to_string(
        "fulfilment/correction_panel.html",
        {
            "req": obj,
            "status": status,
            "corrections": status["corrections"] or [],
            "may_work": may_work,
            "decidable": may_work and obj.is_open and status["state"] == RunState.AWAITING_APPROVAL,
            "answerable": may_work and obj.is_open and status["state"] == RunState.DONE,
            "retellable": may_work and obj.is_open,
            "startable": may_work
            and obj.is_open
            and obj.verified_at is not None
            and bool(obj.corrections)
            and status["state"] in ("not_started", RunState.AWAITING_APPROVAL, RunState.CANCELLED),
            "statement": statement,
        },
        request=http_request,
    )


def _obj(reference: str) -> DataSubjectRequest:
    try:
        return DataSubjectRequest.objects.get(reference=reference)
    except DataSubjectRequest.DoesNotExist:
        raise Http404("No such request") from None


def _done(request, reference: str, notice: str):
    request.session["dashboard_notice"] = notice
    return redirect("dashboard:request", reference=reference)


def _act(request, reference: str, label: str, call):
    obj = _obj(reference)
    try:
        call(obj, Actor.staff(request.user))
    except DsrError as refused:
        return _done(request, reference, f"{label}: {refused.message}")
    return _done(request, reference, f"{label}: done.")


@require_POST
@staff_required(WORK)
def start(request, reference):
    # One door for all: a request to delete is planned (nothing changes), a correction reads the
    # current values, a restriction or an opt-out is passed on to the systems, the others searched.
    labels: dict[str, str] = {
        RequestType.ERASURE: "Plan the erasure",
        RequestType.RECTIFICATION: "Read the current values",
        **dict.fromkeys(propagation.ACTIONS, "Tell the systems"),
    }
    label = labels.get(_obj(reference).request_type, "Search the systems")
    return _act(request, reference, label, lambda o, a: runs.fulfilment_start(request=o, actor=a))


@require_POST
@staff_required(WORK)
def approve(request, reference):
    return _act(
        request,
        reference,
        "Approve the erasure",
        lambda o, a: erasure.erasure_approve(request=o, actor=a, user_id=request.user.pk),
    )


@require_POST
@staff_required(WORK)
def corrections_decide(request, reference):
    """The panel's form: `decision_<id>` (accept, reject or nothing yet) and `reason_<id>`."""
    obj = _obj(reference)
    run = corrections.latest_correction_run(obj)
    ids = list(run.corrections.values_list("pk", flat=True)) if run else []
    decisions = [
        {"id": pk, "decision": request.POST[f"decision_{pk}"], "reason": request.POST.get(f"reason_{pk}", "")}
        for pk in ids
        if request.POST.get(f"decision_{pk}")
    ]
    if not decisions:
        return _done(request, reference, "Decide the corrections: choose accept or reject for at least one.")
    return _act(
        request,
        reference,
        "Decide the corrections",
        lambda o, a: corrections.corrections_decide(request=o, decisions=decisions, actor=a),
    )


@require_POST
@staff_required(WORK)
def correction_retell(request, reference, system):
    return _act(
        request,
        reference,
        f"Tell {system} again",
        lambda o, a: corrections.correction_system_retell(request=o, system=system, actor=a),
    )


@require_POST
@staff_required(WORK)
def correction_answer(request, reference):
    return _act(
        request, reference, "Send the answer", lambda o, a: corrections.correction_answer_send(request=o, actor=a)
    )


@require_POST
@staff_required(WORK)
def erasure_answer(request, reference):
    return _act(request, reference, "Send the answer", lambda o, a: erasure.erasure_answer_send(request=o, actor=a))


@require_POST
@staff_required(WORK)
def retry(request, reference, system):
    if _obj(reference).request_type in propagation.ACTIONS:  # a system told of a restriction or an opt-out
        return _act(
            request,
            reference,
            f"Tell {system} again",
            lambda o, a: propagation.propagation_retry(request=o, system=system, actor=a),
        )
    if _obj(reference).request_type == RequestType.RECTIFICATION:  # a system told a correction
        return _act(
            request,
            reference,
            f"Tell {system} again",
            lambda o, a: corrections.correction_system_retell(request=o, system=system, actor=a),
        )
    return _act(
        request, reference, f"Retry {system}", lambda o, a: runs.system_run_retry(request=o, system=system, actor=a)
    )


@require_POST
@staff_required(WORK)
def switch_to_manual(request, reference, system):
    return _act(
        request,
        reference,
        f"Ask the owner of {system}",
        lambda o, a: runs.system_run_switch_to_manual(request=o, system=system, actor=a),
    )


@require_POST
@staff_required(WORK)
def build_now(request, reference):
    return _act(
        request, reference, "Build the package now", lambda o, a: package_staff.package_build_now(request=o, actor=a)
    )


@require_POST
@staff_required(WORK)
def reissue(request, reference):
    return _act(
        request,
        reference,
        "Re-issue the package",
        lambda o, a: package_staff.package_reissue(request=o, actor=a),
    )


@require_POST
@staff_required(WORK)
def send_answer(request, reference):
    return _act(
        request, reference, "Send the answer", lambda o, a: package_staff.package_answer_send(request=o, actor=a)
    )


@staff_required(WORK)
def package_download(request, reference):
    obj = _obj(reference)
    package = selectors.package_of(selectors.latest_run(obj))
    if package is None:
        raise Http404("No package")
    try:
        chunks = package_staff.package_download(package=package, actor=Actor.staff(request.user), by="staff")
    except DsrError as refused:
        return _done(request, reference, f"Download: {refused.message}")
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{obj.reference}-data.zip"'
    response["Content-Length"] = str(package.bytes)
    return response


@staff_required(VIEW)
def systems_page(request):
    problems, systems, version = [], [], ""
    try:
        datamap = datamap_load()
    except DataMapError as error:
        problems = [str(p) for p in error.problems]
    else:
        systems, version = selectors.systems_of(datamap), datamap.version
    return render(
        request,
        "fulfilment/systems.html",
        {
            "systems": systems,
            "version": version,
            "problems": problems,
            "may_work": request.user.has_perm(WORK),
            "notice": request.session.pop("dashboard_notice", ""),
        },
        status=200 if not problems else 500,
    )


@require_POST
@staff_required(WORK)
def systems_check(request):
    try:
        results = health.systems_health_check()
    except DataMapError:
        return redirect("fulfilment-dashboard:systems")
    failing = [name for name, result in results.items() if not result.ok]
    request.session["dashboard_notice"] = (
        f"Health check: {len(results) - len(failing)} of {len(results)} systems answer"
        + (f"; failing: {', '.join(failing)}." if failing else ".")
    )
    return redirect("fulfilment-dashboard:systems")
