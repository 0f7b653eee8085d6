"""Everything fulfilment registers with the request core's hooks (dsr.hooks), read by
FulfilmentConfig.ready(): the services' after-commit hooks and the pages' panels."""

from collections.abc import Callable
from typing import Any

from dsr.fulfilment import dashboard_views, requester_views
from dsr.fulfilment.services import hooks as service_hooks
from dsr.fulfilment.services import packages

HOOKS: dict[str, Callable[..., Any]] = {
    **service_hooks.HOOKS,
    # Every end state deletes the held copies; only a completed request keeps its package.
    "request_closed": packages.request_held_purge,
    "staff_request_panel": dashboard_views.staff_panel,
    "status_page_panel": requester_views.status_panel,
}
