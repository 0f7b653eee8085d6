"""Reads for fulfilment: a request's search as the API and the dashboard show it, and the data map
with each system's last health check."""

from __future__ import annotations

from typing import Any

from dsr.fulfilment.categories import category_label
from dsr.fulfilment.datamap import DataMap, System
from dsr.fulfilment.models import AccessPackage, FulfilmentRun, ManualTask, SystemHealth, SystemRun, SystemStatus
from dsr.fulfilment.services.corrections import corrections_view
from dsr.fulfilment.services.erasure import erasure_plan_view
from dsr.fulfilment.services.propagation import propagation_view
from dsr.models import DataSubjectRequest

NOT_STARTED = "not_started"


def latest_run(request: DataSubjectRequest) -> FulfilmentRun | None:
    return FulfilmentRun.objects.filter(request=request).order_by("-started_at", "-pk").first()


def package_of(run: FulfilmentRun | None) -> AccessPackage | None:
    if run is None:
        return None
    return AccessPackage.objects.filter(run=run).first()


def _package(package: AccessPackage | None) -> dict[str, Any] | None:
    if package is None or package.purged_at is not None:
        return None
    return {
        "kind": package.kind,
        "files": package.files,
        "bytes": package.bytes,
        "sha256": package.sha256,
        "created_at": package.created_at,
        "expires_at": package.expires_at,
        "downloads": package.downloads,
        "max_downloads": package.max_downloads,
    }


def _system(system_run: SystemRun, task: ManualTask | None) -> dict[str, Any]:
    return {
        "system": system_run.system,
        "kind": system_run.kind,
        "status": system_run.status,
        "records": system_run.records,
        "counts": system_run.counts,
        "error": system_run.error,
        "attempts": system_run.attempts,
        "requested_at": system_run.requested_at,
        "started_at": system_run.started_at,
        "finished_at": system_run.finished_at,
        # Who is still to answer (a manual system's owner), and since when.
        "waiting_for": task.owner_email if task and task.answered_at is None else "",
    }


def fulfilment_status(request: DataSubjectRequest) -> dict[str, Any]:
    """`GET …/fulfilment/`: the latest search, a state per system, and the package."""
    run = latest_run(request)
    if run is None:
        return {
            "state": NOT_STARTED,
            "datamap_version": None,
            "package_kind": None,
            "started_at": None,
            "finished_at": None,
            "systems": [],
            "package": None,
            "plan": None,
            "told": None,
            "corrections": None,
        }
    system_runs = list(SystemRun.objects.filter(run=run).order_by("id"))
    tasks = {t.system_run_id: t for t in ManualTask.objects.filter(system_run__in=system_runs)}
    return {
        "state": run.state,
        "datamap_version": run.datamap_version,
        "package_kind": run.package_kind,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "systems": [_system(sr, tasks.get(sr.pk)) for sr in system_runs],
        "package": _package(package_of(run)),
        # An erasure's plan per system and collection (None for a search).
        "plan": erasure_plan_view(run, system_runs),
        # A restriction's or an opt-out's systems and recipients told, with their state and dates.
        "told": propagation_view(run, system_runs),
        # A correction run's requested corrections beside the current values (None otherwise).
        "corrections": corrections_view(run),
    }


def progress(status: dict[str, Any]) -> tuple[int, int]:
    """(systems finished, systems searched) for the progress bar."""
    finished = sum(
        1 for s in status["systems"] if s["status"] in (SystemStatus.DONE, SystemStatus.FAILED, SystemStatus.SKIPPED)
    )
    return finished, len(status["systems"])


def _health(health: SystemHealth | None) -> dict[str, Any] | None:
    if health is None:
        return None
    return {"ok": health.ok, "detail": health.detail, "latency_ms": health.latency_ms, "checked_at": health.checked_at}


def _collection(collection) -> dict[str, Any]:
    return {
        "name": collection.name,
        "identities": collection.identities,
        "dated_by": collection.dated_by or None,
        "categories": list(collection.categories),
        "flags": dict(collection.flags),
        "fields": [
            {
                "name": f.name,
                "category": f.category,
                "provided": f.provided,
                "never_disclose": f.never_disclose,
                "others_data": f.others_data,
            }
            for f in collection.fields
        ],
    }


def system_summary(system: System, health: SystemHealth | None) -> dict[str, Any]:
    return {
        "name": system.name,
        "kind": system.kind,
        "owner": system.owner,
        "description": system.description,
        "categories": list(system.categories),
        "category_labels": [category_label(c) for c in system.categories],
        "sources": list(system.sources),
        "purposes": list(system.purposes),
        "recipients": [
            {
                "name": r.name,
                "category": r.category,
                "purpose": r.purpose,
                "sold": r.sold,
                "shared": r.shared,
                # How it is told of a restriction or an opt-out (docs/propagation.md).
                "contact": r.contact,
                "system": r.system,
            }
            for r in system.recipients
        ],
        "retention": system.retention,
        "references": [str(r) for r in system.references],
        "collections": [_collection(c) for c in system.collections],
        "health": _health(health),
    }


def systems_of(datamap: DataMap) -> list[dict[str, Any]]:
    """`GET /api/v1/staff/systems/` and the dashboard's map page: every system with its last check."""
    checks = {h.system: h for h in SystemHealth.objects.filter(system__in=datamap.system_names)}
    return [system_summary(s, checks.get(s.name)) for s in datamap.systems]
