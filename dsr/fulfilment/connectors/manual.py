"""Manual systems: nobody can query them, so their owner is asked (README "Manual systems"). The
run opens the owner's task instead of calling a connector (services/manual_tasks.py, registered as
runs' manual asker); this class is what the health check and the map's tools see."""

from __future__ import annotations

from dsr.fulfilment.connectors.base import (
    Connector,
    ConnectorMisconfigured,
    Exported,
    Found,
    Health,
    RecordSink,
    Subject,
    connector_register,
)


@connector_register
class ManualConnector(Connector):
    kind = "manual"

    def _asked(self) -> ConnectorMisconfigured:
        return ConnectorMisconfigured(
            f"{self.system.name} is a manual system: its owner ({self.system.owner}) is asked through a task link"
        )

    def find(self, subject: Subject) -> Found:
        raise self._asked()

    def export(self, subject: Subject, sink: RecordSink) -> Exported:
        raise self._asked()

    def health(self) -> Health:
        # Nothing to reach: the owner is asked by email, and the map has validated the address.
        return Health(ok=True, detail=f"asked of its owner, {self.system.owner}", latency_ms=0.0)
