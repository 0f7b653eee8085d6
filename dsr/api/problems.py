"""Errors as RFC 9457 problem details (application/problem+json): a title, the status, a sentence
saying what is wrong and, for invalid input, the message for each field."""

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from dsr.errors import DsrError

PROBLEM_TYPE_BASE = "https://dsr.invalid/problems/"
# A database restart or failover takes seconds: clients are told to come back after this long.
DATABASE_RETRY_AFTER_SECONDS = 30

log = logging.getLogger(__name__)


def _flatten(detail, prefix=""):
    if isinstance(detail, dict):
        out = {}
        for key, value in detail.items():
            # A nested object's own errors (a list too long, say) belong to the field that holds it.
            out.update(_flatten(value, prefix if key == "non_field_errors" else f"{prefix}{key}."))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {prefix.rstrip(".") or "non_field_errors": [str(item) for item in detail]}
        out = {}
        for index, item in enumerate(detail):
            out.update(_flatten(item, f"{prefix}{index}."))
        return out
    return {prefix.rstrip(".") or "non_field_errors": [str(detail)]}


def _body(*, status_code: int, title: str, detail: str, code: str, errors: dict | None = None) -> dict:
    body = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status_code, "detail": detail}
    if errors:
        body["errors"] = errors
    return body


def problem(*, status_code: int, title: str, detail: str, code: str, errors: dict | None = None, headers=None):
    body = _body(status_code=status_code, title=title, detail=detail, code=code, errors=errors)
    response = Response(body, status=status_code, headers=headers, content_type="application/problem+json")
    return response


DATABASE_UNAVAILABLE: dict[str, Any] = {
    "status_code": 503,
    "title": "Service unavailable",
    "code": "database_unavailable",
    "detail": "The database is briefly unavailable. Try again in a moment.",
}


def is_database_unavailable(exc) -> bool:
    """Django's wrappers of the driver's errors for a lost or refused connection."""
    return isinstance(exc, (OperationalError, InterfaceError))


def problem_response_outside_drf(exc) -> JsonResponse:
    """The same problem shapes for errors that escape the API view (middleware, or uncaught)."""
    if is_database_unavailable(exc):
        response = JsonResponse(_body(**DATABASE_UNAVAILABLE), status=503, content_type="application/problem+json")
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
    body = _body(
        status_code=500, title="Internal error", detail="Something went wrong on our side.", code="internal_error"
    )
    return JsonResponse(body, status=500, content_type="application/problem+json")


def problem_exception_handler(exc, context):
    if is_database_unavailable(exc):
        log.warning(
            "database unavailable during %s: %s", context["request"].path if context.get("request") else "?", exc
        )
        return problem(**DATABASE_UNAVAILABLE, headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
    if isinstance(exc, DsrError):
        errors = {exc.field: [exc.message]} if exc.field else None
        title = "Not allowed now" if exc.status_code == 409 else "Invalid input"
        return problem(status_code=exc.status_code, title=title, detail=exc.message, code=exc.code, errors=errors)
    if isinstance(exc, (Http404, ObjectDoesNotExist)):
        return problem(status_code=404, title="Not found", detail="No such request.", code="not_found")
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = next(iter(errors.items()))
        detail = f"{first[0]}: {first[1][0]}" if first[0] != "non_field_errors" else first[1][0]
        return problem(
            status_code=status.HTTP_400_BAD_REQUEST,
            title="Invalid input",
            detail=detail,
            code="invalid_input",
            errors=errors,
        )
    detail = exc.detail if isinstance(getattr(exc, "detail", None), str) else str(getattr(exc, "detail", exc))
    if isinstance(exc, exceptions.UnsupportedMediaType):
        detail = f"{detail} Send the body as application/json."
    headers = {k: v for k, v in response.headers.items() if k in ("Retry-After", "WWW-Authenticate", "Allow")}
    code = getattr(getattr(exc, "detail", None), "code", None) or exc.__class__.__name__.lower()
    # The title is the status's name: default_detail is a template ("Unsupported media type
    # \"{media_type}\"…") that only the detail fills in.
    title = HTTPStatus(response.status_code).phrase
    return problem(status_code=response.status_code, title=title, detail=str(detail), code=str(code), headers=headers)
