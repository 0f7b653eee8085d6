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
# `correction`: the sql and django systems' `correct` handlers (after the kinds it builds on);
# `http_instruct`, `manual_instruct`: how http and manual systems are told what to do.
from dsr.fulfilment.connectors import correction, django_models, http_instruct, manual_instruct, sql  # noqa: E402, F401
