"""One rule for every single-line field a person types (names, addresses, correction values,
identity details, a signature): no line breaks and no control characters. The web forms, the API
serializers and the services all use it, so no door lets such a value in. Also the services' checks
of a choice and of a text that must not be blank."""

import unicodedata

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext_lazy as _

from dsr.errors import InvalidInput

SINGLE_LINE_MESSAGE = _("Use one line: no line breaks, tabs or other control characters.")

# Besides the Cc controls (tab, CR, LF, NUL, DEL, C1) and the Unicode line and paragraph
# separators, the bidirectional overrides and isolates, which make a name or an address read
# differently from what it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def single_line_problem(value) -> bool:
    """True when `value` holds a line break, a control character or a bidi control."""
    if not value:
        return False
    for ch in str(value):
        if ch in _BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return True
    return False


@deconstructible
class SingleLineValidator:
    """For Django form fields and DRF serializer fields (DRF takes Django validators)."""

    message = SINGLE_LINE_MESSAGE
    code = "single_line"

    def __call__(self, value):
        if single_line_problem(value):
            raise ValidationError(self.message, code=self.code)

    def __eq__(self, other):
        return isinstance(other, SingleLineValidator)


single_line = SingleLineValidator()


def single_line_check(value: str, *, field: str) -> str:
    """For the services: the same rule, raised as InvalidInput (400) naming the field."""
    if single_line_problem(value):
        raise InvalidInput(str(SINGLE_LINE_MESSAGE), field=field)
    return value


def choice_check(value: str, choices, field: str) -> str:
    """For the services: a value of one of the model's choices, or InvalidInput listing them."""
    if value not in choices.values:
        allowed = ", ".join(choices.values)
        raise InvalidInput(f"'{value}' is not a valid {field}; use one of: {allowed}.", field=field)
    return value


def text_required(value: str | None, field: str, what: str) -> str:
    """For the services: a text that must say something (a reason, a message), stripped."""
    value = (value or "").strip()
    if not value:
        raise InvalidInput(f"{what} is required.", field=field)
    return value
