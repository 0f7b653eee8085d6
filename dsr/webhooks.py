"""The ESP tracking webhooks under /anymail/, guarded.

anymail accepts any POST when ANYMAIL_WEBHOOK_SECRET is unset (it only warns), and answers 500
to bodies its parsers do not expect. Here every tracking endpoint anymail ships is mounted
behind a guard: without the shared secret it refuses; the secret is checked before any ESP code
runs; a body that cannot be read as that ESP's events answers 400 and records nothing. anymail's
inbound endpoints are not mounted: the product reads no inbound mail, and an endpoint that
accepted it would drop it silently."""

import json
import logging
from datetime import datetime

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent, EventType, tracking
from anymail.utils import get_anymail_setting, get_request_basic_auth
from anymail.webhooks.base import AnymailCoreWebhookView
from anymail.webhooks.mandrill import MandrillCombinedWebhookView
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.urls import URLPattern
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

log = logging.getLogger(__name__)

_KNOWN_EVENT_TYPES = {value for name, value in vars(EventType).items() if name.isupper()} - {EventType.UNKNOWN}


class MalformedWebhook(Exception):
    """The body is not a batch of events this ESP sends."""


def webhook_secrets() -> list[str]:
    """The `user:password` pairs an ESP must present (anymail's WEBHOOK_SECRET setting)."""
    secret = get_anymail_setting("webhook_secret", default=[])
    if isinstance(secret, str):
        secret = [secret] if secret else []
    return [s for s in secret if s]


def is_tracking_view(view_class) -> bool:
    """anymail's tracking webhooks; Mandrill has one endpoint for tracking and inbound."""
    return (
        isinstance(view_class, type)
        and issubclass(view_class, AnymailCoreWebhookView)
        and (getattr(view_class, "signal", None) is tracking or issubclass(view_class, MandrillCombinedWebhookView))
    )


def _text_ok(value) -> bool:
    # PostgreSQL refuses NUL in text; anything but a string here is not what the ESP sends.
    return value is None or (isinstance(value, str) and "\x00" not in value)


def _events_clean(events: list) -> None:
    """What the receiver stores must have the types it expects (a numeric message id, as Postal
    sends, becomes text); a batch made only of events with neither a known type nor a message id
    is not something the ESP sends."""
    tracked = [event for event in events if isinstance(event, AnymailTrackingEvent)]
    for event in tracked:
        if isinstance(event.message_id, int) and not isinstance(event.message_id, bool):
            event.message_id = str(event.message_id)
        if not all(
            _text_ok(getattr(event, name, None))
            for name in ("message_id", "event_type", "recipient", "description", "reject_reason")
        ):
            raise MalformedWebhook("an event field has an unexpected type")
        if event.timestamp is not None and not isinstance(event.timestamp, datetime):
            raise MalformedWebhook("an event timestamp is not a time")
    if tracked and not any(event.message_id or event.event_type in _KNOWN_EVENT_TYPES for event in tracked):
        raise MalformedWebhook("no event with a known type or a message id")


def _json_body(request):
    try:
        return json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedWebhook("the body is not JSON") from exc


def _mailtrap_shape(view, request) -> None:
    body = _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise MalformedWebhook("a Mailtrap call is an object with an 'events' list")


def _amazon_ses_shape(view, request) -> None:
    sns = view._parse_sns_message(request)
    if sns.get("Type") != "Notification":
        return  # subscription confirmations carry no events
    try:
        message = json.loads(sns.get("Message"))
    except (TypeError, ValueError):
        return  # anymail tells SNS's plain-text topic check from garbage
    if not isinstance(message, dict) or not isinstance(
        message.get("eventType") or message.get("notificationType"), str
    ):
        raise MalformedWebhook("an SES notification names its eventType or notificationType")


# Where anymail reads a body with none of the ESP's fields as "no events" (a 200), the shape the
# ESP documents is checked first.
_SHAPES = {"Mailtrap": _mailtrap_shape, "Amazon SES": _amazon_ses_shape}


def _guarded_class(view_class):
    """The anymail view with its validation and parsing failures turned into a 400. Failures
    after parsing (recording the event, e.g. the database is down) keep their own status, so
    the ESP delivers the event again later."""

    class Guarded(view_class):  # type: ignore[valid-type,misc]  # the anymail view, chosen at run time
        def run_validators(self, request):
            try:
                super().run_validators(request)
            except (AnymailWebhookValidationFailure, ImproperlyConfigured):
                raise
            except Exception as exc:  # the ESP's own checks choked on the body
                raise MalformedWebhook(f"{type(exc).__name__}: {exc}") from exc

        def parse_events(self, request):
            shape = _SHAPES.get(self.esp_name)
            if shape:
                shape(self, request)
            try:
                events = list(super().parse_events(request))
            except ImproperlyConfigured:
                raise
            except Exception as exc:  # KeyError, TypeError, ValueError, … from a body of the wrong shape
                raise MalformedWebhook(f"{type(exc).__name__}: {exc}") from exc
            _events_clean(events)
            return events

        def post(self, request, *args, **kwargs):
            try:
                return super().post(request, *args, **kwargs)
            except (MalformedWebhook, AnymailWebhookValidationFailure) as exc:
                log.warning("%s webhook refused: %s", self.esp_name, str(exc)[:300])
                return HttpResponse("Malformed or unauthenticated webhook call.", status=400, content_type="text/plain")

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{view_class.__name__}"
    return Guarded


def _refused(status: int, text: str, **headers) -> HttpResponse:
    response = HttpResponse(text, status=status, content_type="text/plain")
    for name, value in headers.items():
        response[name] = value
    return response


def guarded_view(view_class, initkwargs=None):
    guarded = _guarded_class(view_class)
    initkwargs = initkwargs or {}

    @csrf_exempt
    def view(request, *args, **kwargs):
        secrets = webhook_secrets()
        if not secrets:
            # anymail would accept anything from anyone: a forged "complained" would flag a request.
            log.warning("tracking webhook %s refused: ANYMAIL_WEBHOOK_SECRET is not set", request.path)
            return _refused(403, "Tracking webhooks are switched off on this server.")
        if request.method == "POST":
            given = get_request_basic_auth(request)
            if given is None:
                # Amazon SNS sends credentials only after a 401 challenge; other ESPs send them at once.
                return _refused(
                    401, "Authentication required.", **{"WWW-Authenticate": 'Basic realm="tracking webhook"'}
                )
            if not any(constant_time_compare(given, secret) for secret in secrets):
                return _refused(400, "Malformed or unauthenticated webhook call.")
        try:
            instance = guarded(**initkwargs)
            instance.setup(request, *args, **kwargs)
            return instance.dispatch(request, *args, **kwargs)
        except ImproperlyConfigured as exc:
            # An ESP this server is not set up for (its signing key or library is missing).
            log.error("tracking webhook %s is not configured: %s", request.path, exc)
            return _refused(404, "Not found.")

    view.view_class = guarded  # type: ignore[attr-defined]  # as View.as_view() does
    return view


def _tracking_patterns() -> list[URLPattern]:
    patterns = []
    for pattern in anymail_urls.urlpatterns:
        view_class = getattr(pattern.callback, "view_class", None)
        if is_tracking_view(view_class):
            view = guarded_view(view_class, getattr(pattern.callback, "view_initkwargs", None))
            patterns.append(URLPattern(pattern.pattern, view, pattern.default_args, pattern.name))
    return patterns


app_name = "anymail"
urlpatterns = _tracking_patterns()
