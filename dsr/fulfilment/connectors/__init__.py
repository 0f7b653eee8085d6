"""The connectors, one module per kind, each registering itself on import (see base.py)."""

from dsr.fulfilment.connectors import http, manual  # noqa: F401  (each module registers its kind)
from dsr.fulfilment.connectors.base import (
    CONNECTORS,
    AmbiguousIdentity,
    Connector,
    ConnectorError,
    ConnectorMisconfigured,
    Exported,
    Found,
    Health,
    RecordSink,
    Subject,
    connector_for,
    connector_register,
)

__all__ = [
    "CONNECTORS",
    "AmbiguousIdentity",
    "Connector",
    "ConnectorError",
    "ConnectorMisconfigured",
    "Exported",
    "Found",
    "Health",
    "RecordSink",
    "Subject",
    "connector_for",
    "connector_register",
]

# The kinds, registered by importing their modules (the manual and http kinds register elsewhere),
# then the instruction handlers (issue 11), after the kinds they build on: `correction` the sql and
# django systems' `correct`, `flags` their restrict / opt_out_sale / limit_sensitive;
# `http_instruct`, `manual_instruct` every action told to http and manual systems.
from dsr.fulfilment.connectors import correction, django_models, flags, http_instruct, manual_instruct, sql  # noqa: E402, F401
