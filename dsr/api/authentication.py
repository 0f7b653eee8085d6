"""Staff API tokens: `Authorization: Token <key>`, checked by django-rest-knox against the stored
digest and expiry; a wrong, expired or revoked key is a 401 problem response."""

from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication
from rest_framework import exceptions

from dsr.services.tokens import api_token_used

INVALID_TOKEN = (
    "This API token is not valid: it is wrong, expired or revoked. Create a new one on the dashboard's API tokens page."
)


class ApiTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, token: bytes):
        try:
            user, api_token = super().authenticate_credentials(token)
        except (exceptions.AuthenticationFailed, UnicodeDecodeError):
            # One answer for every failure: it tells a guesser nothing about which keys exist.
            raise exceptions.AuthenticationFailed(INVALID_TOKEN, code="token_invalid") from None
        api_token_used(token=api_token)
        return user, api_token


class ApiTokenScheme(KnoxTokenScheme):
    """The API docs describe the header (drf-spectacular's knox scheme, for this subclass)."""

    target_class = "dsr.api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"
