"""Where the company's systems answer, outside the staff dashboard: an http system's signed
callback (JSON, problem+json errors) and a manual system owner's private task page (a form that
works without JavaScript). Each view limits by the real client address, validates its input and
calls one service."""

from __future__ import annotations

from http import HTTPStatus

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from dsr.api.problems import PROBLEM_TYPE_BASE
from dsr.errors import DsrError
from dsr.fulfilment.categories import category_label
from dsr.fulfilment.services import callbacks, manual_tasks
from dsr.ratelimit import client_ip, rate_limit_hit

BEARER = "bearer "


def problem_response(
    *, status: int, code: str, detail: str, field: str | None = None, headers: dict | None = None
) -> JsonResponse:
    """RFC 9457 problem details, in the shape the API answers with (dsr.api.problems)."""
    body: dict = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if field:
        body["errors"] = {field: [detail]}
    response = JsonResponse(body, status=status, content_type="application/problem+json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@csrf_exempt  # a system's server posts here, with a bearer token and a signature, never a browser
@require_POST
def callback(request: HttpRequest, system_run_id: int) -> HttpResponse:
    """`POST /fulfilment/callback/<id>/`: an http system's records, "nothing held" or error."""
    wait = rate_limit_hit(scope="callback_ip", key=client_ip(request))
    if wait:
        return problem_response(
            status=429, code="rate_limited", detail=f"Too many callbacks; try again in {wait} s.",
            headers={"Retry-After": str(wait)},
        )  # fmt: skip
    limit = settings.DSR_HTTP_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return problem_response(status=413, code="too_large", detail=f"The body is larger than {limit} bytes.")
    body = request.read(limit + 1)
    if len(body) > limit:
        return problem_response(status=413, code="too_large", detail=f"The body is larger than {limit} bytes.")
    authorization = request.headers.get("Authorization", "")
    token = authorization[len(BEARER) :].strip() if authorization.lower().startswith(BEARER) else ""
    try:
        result = callbacks.callback_receive(
            system_run_id=system_run_id,
            token=token,
            method=request.method or "POST",
            path=request.get_full_path(),
            body=body,
            headers=request.headers,
        )
    except callbacks.CallbackRefused as refused:
        headers = {"WWW-Authenticate": 'Bearer realm="fulfilment-callback"'} if refused.status_code == 401 else None
        return problem_response(
            status=refused.status_code, code=refused.code, detail=refused.message, field=refused.field, headers=headers
        )
    return JsonResponse(result, status=200)


def _private(response: HttpResponse) -> HttpResponse:
    # The link is the owner's key: never cached, indexed or passed on to another site in a Referer
    # ("same-origin", the site's policy: "no-referrer" would make the browser send `Origin: null`
    # with the owner's form, which the CSRF check rightly refuses).
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "same-origin"
    return response


def _collections(page: manual_tasks.TaskPage, errors: dict[str, str]) -> list[dict]:
    if page.system is None:
        return []
    return [
        {
            "name": c.name,
            "description": c.description,
            "identities": c.identities,
            "dated_by": c.dated_by,
            "fields": [
                {
                    "name": f.name,
                    "category": category_label(f.category) if f.personal else "not personal",
                    "description": f.description,
                }
                for f in c.fields
            ],
            "input": f"file_{c.name}",
            "error": errors.get(f"file_{c.name}", ""),
        }
        for c in page.system.collections
    ]


@require_http_methods(["GET", "POST"])
def owner_task(request: HttpRequest, token: str) -> HttpResponse:
    """`/fulfilment/task/<token>/`: the owner's page — whom to search for and what, and the form
    for their export or "nothing held". A token that opens no task is a 404."""
    wait = rate_limit_hit(scope="task_ip", key=client_ip(request))
    if wait:
        return _private(render(request, "public/too_many.html", {"minutes": max(1, wait // 60)}, status=429))
    task = manual_tasks.manual_task_by_token(token)
    if task is None:
        raise Http404("No such task")
    page = manual_tasks.manual_task_page(task)
    if page.lines is not None:
        return _private(owner_instruction(request, token, task, page))
    errors: dict[str, str] = {}
    status = 200
    notice = ""
    if request.method == "POST":
        # A file input left empty sends no file; each one sent is named file_<collection>.
        uploads: dict[str, UploadedFile] = {}
        for key in request.FILES:
            upload = request.FILES.get(key)
            if isinstance(upload, UploadedFile):
                uploads[key.removeprefix("file_")] = upload
        nothing_held = request.POST.get("answer") == "nothing_held"
        if nothing_held and request.POST.get("confirm") != "yes":
            errors["nothing_held"] = "Tick the box to confirm that the system holds nothing about this person."
        else:
            try:
                kept = manual_tasks.manual_task_answer(task=task, uploads=uploads, nothing_held=nothing_held)
            except DsrError as refused:
                errors[refused.field or "form"] = refused.message
            else:
                notice = (
                    "Thank you: recorded that the system holds nothing about this person."
                    if nothing_held
                    else f"Thank you: {kept} records received."
                )
                task = manual_tasks.manual_task_by_token(token) or task
                page = manual_tasks.manual_task_page(task)
        if errors:
            status = 400
    context = {
        "page": page,
        "collections": _collections(page, errors),
        "errors": errors,
        "notice": notice,
        "max_bytes": settings.DSR_UPLOAD_MAX_BYTES,
    }
    return _private(render(request, "fulfilment/owner_task.html", context, status=status))


def _counts(request: HttpRequest, page: manual_tasks.TaskPage, errors: dict[str, str]) -> dict[str, int]:
    """The optional counts the owner typed (count_<collection>): whole numbers, 0 or more."""
    counts: dict[str, int] = {}
    for c in page.system.collections if page.system else ():
        raw = (request.POST.get(f"count_{c.name}") or "").strip()
        if not raw:
            continue
        if not raw.isdigit():
            errors[f"count_{c.name}"] = f"The number of records changed in {c.name} must be a whole number, 0 or more."
            continue
        counts[c.name] = int(raw)
    return counts


def owner_instruction(request: HttpRequest, token: str, task, page: manual_tasks.TaskPage) -> HttpResponse:
    """An instruction's task (erase, restrict, …): the exact list, and the owner's answer — done
    (with the rows changed, if known) or could not, with the reason."""
    errors: dict[str, str] = {}
    notice = ""
    status = 200
    form = {"reason": "", "counts": {}}
    if request.method == "POST":
        answer = request.POST.get("answer")
        reason = request.POST.get("reason", "")
        form["reason"] = reason
        if answer == "done":
            counts = _counts(request, page, errors)
            form["counts"] = {k: str(v) for k, v in counts.items()}
            if request.POST.get("confirm") != "yes":
                errors["confirm"] = "Tick the box to confirm that it is done."
        elif answer == "could_not":
            counts = {}
        else:
            errors["form"] = "Choose whether it is done or could not be done."
        if not errors:
            try:
                manual_tasks.manual_instruction_answer(task=task, done=answer == "done", counts=counts, reason=reason)
            except DsrError as refused:
                errors[refused.field or "form"] = refused.message
            else:
                notice = (
                    "Thank you: recorded that it is done."
                    if answer == "done"
                    else "Thank you: recorded that it could not be done; the privacy team will follow it up."
                )
                task = manual_tasks.manual_task_by_token(token) or task
                page = manual_tasks.manual_task_page(task)
        if errors:
            status = 400
    context = {
        "page": page,
        "action": manual_tasks.ACTION_LABELS.get(page.action, page.action),
        "collections": [c.name for c in page.system.collections] if page.system else [],
        "errors": errors,
        "notice": notice,
        "form": form,
        "confirmed": task.system_run.status == "done",
    }
    return render(request, "fulfilment/owner_instruction.html", context, status=status)
