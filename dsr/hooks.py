"""Extension points of the request core, for apps that build on it (fulfilment) without the core
importing them (the model: Saleor's plugin manager). An app registers its functions in its
AppConfig.ready(); the core calls whatever is registered, by name:

- `request_approved(request_id)`: after the approval committed, or intake put a request that needs
  no verification (an opt-out) to work (fulfilment starts its search, or tells the systems);
- `request_closed(request_id, status)`: after a request reached an end state (held copies purged);
- `request_purging(request_id)`: inside the retention purge's transaction, before the request's
  rows go: the app deletes its own rows of the request (called with `hooks_call`: a failure rolls
  the purge of that request back, so nothing is left half-purged);
- `staff_request_panel(http_request, request) -> str`: HTML shown on the staff request page;
- `status_page_panel(http_request, request) -> str`: HTML shown on the requester's status page.

A panel returns already-escaped HTML (a rendered template). A failing after-commit hook is
logged and does not undo what committed: the sweeps of the app that registered it catch up."""

import logging
from collections.abc import Callable
from typing import Any

from django.utils.safestring import SafeString, mark_safe

logger = logging.getLogger(__name__)

HOOK_NAMES = ("request_approved", "request_closed", "request_purging", "staff_request_panel", "status_page_panel")
_registered: dict[str, list[Callable[..., Any]]] = {name: [] for name in HOOK_NAMES}


def hook_register(name: str, function: Callable[..., Any]) -> None:
    if name not in _registered:
        raise ValueError(f"no hook named {name!r} (one of: {', '.join(HOOK_NAMES)})")
    if function not in _registered[name]:
        _registered[name].append(function)


def hooks_notify(name: str, *args: Any) -> None:
    """Call every function registered for an after-commit hook; one failing stops none of the others."""
    for function in _registered[name]:
        try:
            function(*args)
        except Exception:
            logger.exception("hook %s: %s failed", name, getattr(function, "__qualname__", function))


def hooks_call(name: str, *args: Any) -> None:
    """Call every function registered for an in-transaction hook; a failure propagates."""
    for function in _registered[name]:
        function(*args)


def panels_render(name: str, http_request, obj) -> list[SafeString]:
    return [mark_safe(html) for function in _registered[name] if (html := function(http_request, obj))]  # noqa: S308
