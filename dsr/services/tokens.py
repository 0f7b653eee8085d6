"""Staff API tokens: created for a user with a name and a lifetime, the key handed out once and
stored only as a digest (django-rest-knox), last use recorded, revoked by deleting the row."""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from dsr.errors import InvalidInput
from dsr.models import ApiToken
from dsr.validators import single_line_check

logger = logging.getLogger(__name__)

NAME_MAX_LENGTH = ApiToken._meta.get_field("name").max_length
MAX_DAYS = 365  # a key that outlives a year is a key nobody remembers handing out
MAX_TOKENS_PER_USER = 20
# Last use is written at most this often per token, so that a busy client does not write on every call.
LAST_USE_RESOLUTION = timedelta(minutes=1)
# The token dsr_create_officer (and the demo) hands out; running the command again replaces it.
COMMAND_TOKEN_NAME = "dsr_create_officer"


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Give the token a name: what or who will use it.", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(f"The name can be at most {NAME_MAX_LENGTH} characters.", field="name")
    return single_line_check(name, field="name")


def _clean_days(days) -> int:
    if days is None:
        days = settings.DSR_API_TOKEN_DAYS
    try:
        days = int(days)
    except (TypeError, ValueError):
        raise InvalidInput(f"The lifetime must be a whole number of days, 1 to {MAX_DAYS}.", field="days") from None
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"The lifetime must be 1 to {MAX_DAYS} days (asked: {days}).", field="days")
    return days


@transaction.atomic
def api_token_create(*, user, name: str, days: int | None = None, replace: bool = False) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the key, which exists nowhere else afterwards.
    `replace` first revokes the user's tokens of the same name."""
    name = _clean_name(name)
    days = _clean_days(days)
    # Lock the user's row: two creations at once must not both pass the per-user limit.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    if replace:
        ApiToken.objects.filter(user=user, name=name).delete()
    if ApiToken.objects.filter(user=user, expiry__gt=timezone.now()).count() >= MAX_TOKENS_PER_USER:
        raise InvalidInput(f"You already hold {MAX_TOKENS_PER_USER} live tokens; revoke one first.", field="name")
    token, key = ApiToken.objects.create(user=user, expiry=timedelta(days=days), name=name)
    logger.info(
        "API token %s (%s) created for %s, expires %s", token.token_key, name, user.get_username(), token.expiry.date()
    )
    return token, key


@transaction.atomic
def api_token_revoke(*, user, token_id: str) -> ApiToken:
    """Revoke one of `user`'s own tokens by its id (the key's first characters); raises
    ApiToken.DoesNotExist when the user holds no such token."""
    tokens = list(ApiToken.objects.select_for_update().filter(user=user, token_key=(token_id or "").strip()))
    if not tokens:
        raise ApiToken.DoesNotExist(f"No token '{token_id}' for {user.get_username()}.")
    ApiToken.objects.filter(pk__in=[t.pk for t in tokens]).delete()
    logger.info("API token %s (%s) of %s revoked", tokens[0].token_key, tokens[0].name, user.get_username())
    return tokens[0]


@transaction.atomic
def api_tokens_revoke_all(*, user) -> int:
    """Revoke every token `user` holds (e.g. when a device is lost or the person leaves)."""
    count, _ = ApiToken.objects.filter(user=user).delete()
    logger.info("All %d API token(s) of %s revoked", count, user.get_username())
    return count


def api_token_used(*, token: ApiToken, now=None) -> bool:
    """Record that `token` was just used, at most once per LAST_USE_RESOLUTION (one UPDATE)."""
    now = now or timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USE_RESOLUTION:
        return False
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now
    return True
