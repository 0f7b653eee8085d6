"""Errors the services raise. Each message is a plain sentence a person can act on; the API turns
InvalidInput into 400 and TransitionNotAllowed into 409 (problem+json)."""


class DsrError(Exception):
    status_code = 400
    code = "dsr_error"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DsrError):
    status_code = 400
    code = "invalid_input"


class TransitionNotAllowed(DsrError):
    status_code = 409
    code = "not_allowed_now"
