"""Everything fulfilment registers with the request core's hooks (dsr.hooks), read by
FulfilmentConfig.ready(): the services' after-commit hooks and the pages' panels. Also what the
runs service is given here rather than at import of the connectors (runs imports them): the http
systems' callback preparer and the manual owners' asker; and the demo processor's task, so a
worker knows it."""

from collections.abc import Callable
from typing import Any

from dsr.fulfilment import dashboard_views, demo_processor, requester_views  # noqa: F401  (demo_processor: its Celery task)
from dsr.fulfilment.services import callbacks, manual_tasks, packages, propagation, runs  # noqa: F401  (propagation: registers its starters)
from dsr.fulfilment.services import hooks as service_hooks

HOOKS: dict[str, Callable[..., Any]] = {
    **service_hooks.HOOKS,
    # Every end state deletes the held copies; only a completed request keeps its package.
    "request_closed": packages.request_held_purge,
    "request_purging": packages.request_rows_purge,
    "staff_request_panel": dashboard_views.staff_panel,
    "status_page_panel": requester_views.status_panel,
}

runs.subject_preparer_register("http", callbacks.callback_subject_prepare)
runs.manual_asker_register(manual_tasks.manual_task_open)
