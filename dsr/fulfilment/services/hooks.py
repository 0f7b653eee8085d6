"""What fulfilment's services register with the request core's hooks (dsr.hooks); the panels are
registered by dsr.fulfilment.wiring."""

from dsr.fulfilment.services import runs

HOOKS = {
    "request_approved": runs.fulfilment_autostart,
}
