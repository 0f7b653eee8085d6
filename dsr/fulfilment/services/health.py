"""Each system's health: can it be reached with the credentials the map names? Checked by beat
(DSR_HEALTH_CHECK_SECONDS), by `dsr_datamap check`, and shown on the dashboard and the staff API."""

import time

from django.utils import timezone

from dsr.fulfilment.connectors import ConnectorError, Health, connector_for
from dsr.fulfilment.datamap import DataMap, datamap_load
from dsr.fulfilment.models import SystemHealth


def system_health(system) -> Health:
    started = time.perf_counter()
    try:
        health = connector_for(system).health()
    except ConnectorError as error:
        health = Health(ok=False, detail=str(error))
    except Exception as error:  # a broken connector reports, never stops the others' checks
        health = Health(ok=False, detail=f"unexpected error: {type(error).__name__}: {error}")
    if health.latency_ms is None:
        health.latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return health


def systems_health_check(datamap: DataMap | None = None) -> dict[str, Health]:
    """Check every system of the map and record each result; returns them by system name."""
    datamap = datamap or datamap_load()
    results = {}
    for system in datamap.systems:
        health = system_health(system)
        SystemHealth.objects.update_or_create(
            system=system.name,
            defaults={
                "kind": system.kind,
                "ok": health.ok,
                "detail": health.detail[:2000],
                "latency_ms": health.latency_ms,
                "checked_at": timezone.now(),
            },
        )
        results[system.name] = health
    return results
