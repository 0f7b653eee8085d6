"""System checks (`manage.py check --deploy`) for settings the product cannot work safely without."""

import warnings

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from dsr.webhooks import webhook_secrets


def _anymail_esp() -> str:
    """The anymail backend in use ("postmark", "mailgun", …), or "" when mail goes elsewhere."""
    backend = settings.EMAIL_BACKEND
    if backend.startswith("anymail.backends."):
        return backend.split(".")[2]
    return ""


@checks.register(checks.Tags.security, deploy=True)
def tracking_webhook_check(app_configs=None, **kwargs):
    """The tracking webhook refuses every call without a shared secret: with an ESP in use, no
    delivery, bounce or complaint would ever be recorded."""
    from anymail import urls as anymail_urls

    esp = _anymail_esp()
    if not esp:
        return []  # nothing posts to /anymail/; its endpoints refuse, which is the safe state
    if not webhook_secrets():
        return [
            checks.Error(
                f"Email goes through anymail ({esp}) but ANYMAIL_WEBHOOK_SECRET is not set: the tracking "
                "webhook refuses every call, so deliveries, bounces and complaints are never recorded.",
                hint="Set ANYMAIL_WEBHOOK_SECRET=user:password and put the same credentials in the ESP's webhook URL.",
                id="dsr.E013",
            )
        ]
    pattern = next((p for p in anymail_urls.urlpatterns if p.name == f"{esp}_tracking_webhook"), None)
    view_class = getattr(getattr(pattern, "callback", None), "view_class", None)
    if view_class is None:
        return []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            instance = view_class()
        if getattr(instance, "webhook_key", "") is None:  # Mandrill asks for its key only at the first call
            raise ImproperlyConfigured(f"{instance.esp_name} needs its WEBHOOK_KEY")
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                f"The {esp} tracking webhook cannot start: {exc}",
                hint="Set the ESP's webhook signing key among the ANYMAIL_* variables (see anymail's documentation).",
                id="dsr.E014",
            )
        ]
    return []
