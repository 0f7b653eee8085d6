"""What fulfilment registers with the request core's hooks (dsr.hooks)."""

from dsr.fulfilment.services import runs

HOOKS = {
    "request_approved": runs.fulfilment_autostart,
}
