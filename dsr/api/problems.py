"""Errors as RFC 9457 problem details (application/problem+json): a title, the status, a sentence
saying what is wrong and, for invalid input, the message for each field."""

from http import HTTPStatus

from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from dsr.errors import DsrError

PROBLEM_TYPE_BASE = "https://dsr.invalid/problems/"


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


def problem(*, status_code: int, title: str, detail: str, code: str, errors: dict | None = None, headers=None):
    body = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status_code, "detail": detail}
    if errors:
        body["errors"] = errors
    response = Response(body, status=status_code, headers=headers, content_type="application/problem+json")
    return response


def problem_exception_handler(exc, context):
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
            status_code=status.HTTP_400_BAD_REQUEST, title="Invalid input", detail=detail, code="invalid_input", errors=errors
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
