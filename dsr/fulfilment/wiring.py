"""Everything fulfilment registers with the request core's hooks (dsr.hooks), read by
FulfilmentConfig.ready(): the services' after-commit hooks and the pages' panels."""

from collections.abc import Callable
from typing import Any

from dsr.fulfilment import dashboard_views
from dsr.fulfilment.services import hooks as service_hooks

HOOKS: dict[str, Callable[..., Any]] = {
    **service_hooks.HOOKS,
    "staff_request_panel": dashboard_views.staff_panel,
}
