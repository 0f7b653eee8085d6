"""Each system's health: can it be reached with the credentials the map names? Checked by beat
(DSR_HEALTH_CHECK_SECONDS), by `dsr_datamap check`, and shown on the dashboard and the staff API."""

import time

from django.utils import timezone

from dsr.fulfilment.connectors import CONNECTORS, ConnectorError, Health, connector_for
from dsr.fulfilment.datamap import DataMap, System, datamap_load
from dsr.fulfilment.models import SystemHealth


def system_health(system: System) -> Health:
    if system.kind not in CONNECTORS:
        if system.kind == "manual":  # nothing to reach: its owner answers each request by hand
            return Health(ok=True, detail=f"answered by its owner, {system.owner}", latency_ms=None)
        return Health(
            ok=False,
            detail=f"no connector is installed for kind '{system.kind}', so this system cannot be searched",
            latency_ms=None,
        )
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


def systems_health_check(datamap: DataMap | None = None, *, record: bool = True) -> dict[str, Health]:
    """Check every system of the map and (unless `record` is off: a map that is not the configured
    one) record each result, which the dashboard shows as the last check; returns them by name."""
    datamap = datamap or datamap_load()
    results = {}
    for system in datamap.systems:
        health = system_health(system)
        if record:
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
