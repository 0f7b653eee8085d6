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

# The kinds, registered by importing their modules (the manual and http kinds register elsewhere).
# How http and manual systems are told what to do (instruction handlers, registered on import).
from dsr.fulfilment.connectors import django_models, http_instruct, manual_instruct, sql  # noqa: E402, F401  # noqa: E402, F401
