"""Everything fulfilment registers with the request core's hooks (dsr.hooks), read by
FulfilmentConfig.ready(): the services' after-commit hooks and the pages' panels. Also what the
runs service is given here rather than at import of the connectors (runs imports them): the http
systems' callback preparer and the manual owners' asker; and the demo processor's task, so a
worker knows it."""

from collections.abc import Callable
from typing import Any

from dsr.fulfilment import dashboard_views, demo_processor, requester_views  # noqa: F401  (demo_processor: its Celery task)
from dsr.fulfilment.connectors import http_instruct, manual_instruct
from dsr.fulfilment.services import (  # noqa: F401  (corrections, propagation: register their starters)
    callbacks,
    corrections,
    erasure,
    instructions,
    manual_tasks,
    packages,
    propagation,
    runs,
)
from dsr.fulfilment.services import hooks as service_hooks


def request_closed(request_id: int, status: str) -> None:
    """Every end state deletes the held copies (a completed request keeps only its package) and
    the current values a correction run read for the officer."""
    try:
        packages.request_held_purge(request_id, status)
    finally:
        corrections.correction_values_purge(request_id)


def request_purging(request_id: int) -> None:
    """Inside the retention purge's transaction: the requester's statement (kept with the record
    for as long as the record, §7023(f), §7101) goes with it, then the runs and packages."""
    corrections.correction_statement_purge(request_id)
    packages.request_rows_purge(request_id)


HOOKS: dict[str, Callable[..., Any]] = {
    **service_hooks.HOOKS,
    "request_closed": request_closed,
    "request_purging": request_purging,
    "staff_request_panel": dashboard_views.staff_panel,
    "status_page_panel": requester_views.status_panel,
}

runs.subject_preparer_register("http", callbacks.callback_subject_prepare)
runs.manual_asker_register(manual_tasks.manual_task_open)
# Instructions (issue 11): where an http system confirms later, and the manual owner's task.
http_instruct.callback_preparer_register(callbacks.instruction_subject_prepare)
manual_instruct.owner_instructor_register(manual_tasks.manual_instruction_open)
# An erasure's http and manual systems are told through the instruction channel; the erasure
# service finishes its run when each has confirmed (or failed).
instructions.instruction_outcome_register("erasure", erasure.erasure_instruction_outcome)
# Art 19 and §7022(b)(3): once every system has erased or corrected the person, the recipients
# the map lists for those systems are told through propagation, and the run ends when each confirmed.
erasure.erasure_recipients_register(propagation.recipients_tell)
corrections.corrections_recipients_register(propagation.recipients_tell_corrections)
