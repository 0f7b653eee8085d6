"""The API's only body parser: JSON, read with limits. A body that is too large, nested too deep,
not UTF-8, not JSON or not an object is refused with a problem response before anything looks at
it (Python's parser would otherwise recurse a thousand levels deep and fail with a 500)."""

import json
import re

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import BaseParser

# The deepest body the API takes is an object holding a list of objects (corrections): 3 levels.
MAX_DEPTH = 10
_STRUCTURE = re.compile(r'[\[\]{}"\\]')


class BodyTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "body_too_large"


def _too_deep(text: str, limit: int) -> bool:
    """Nesting depth of brackets outside strings, in one linear pass over the characters that matter."""
    depth, in_string, skip = 0, False, -1
    for match in _STRUCTURE.finditer(text):
        ch, at = match.group(), match.start()
        if in_string:
            if at == skip:
                continue  # the character after a backslash
            if ch == "\\":
                skip = at + 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _constant_refused(name):
    raise ValueError(f"{name} is not a JSON value")


class LimitedJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DSR_API_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            # RFC 8259 §8.1: JSON between systems is UTF-8; a charset parameter means nothing.
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"The body is not valid UTF-8 (byte {exc.start}).") from None
        if _too_deep(text, MAX_DEPTH):
            raise exceptions.ParseError(f"The JSON is nested more than {MAX_DEPTH} levels deep.")
        try:
            data = json.loads(text, parse_constant=_constant_refused)
        except json.JSONDecodeError as exc:
            raise exceptions.ParseError(
                f"The body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from None
        except (ValueError, RecursionError):  # NaN, Infinity, a number of thousands of digits
            raise exceptions.ParseError("The body holds a value that is not a usable JSON number.") from None
        # A view whose body is a list of items says so (`body_is_list`, e.g. the officer's
        # decisions on each requested correction); every other body is an object.
        if getattr((parser_context or {}).get("view"), "body_is_list", False):
            if not isinstance(data, list):
                raise exceptions.ParseError("The body must be a JSON list.")
            return data
        if not isinstance(data, dict):
            raise exceptions.ParseError("The body must be a JSON object.")
        return data
