"""What the officer does with a request's package: build it now with what has answered, download
it, and send the answer (completing the request with a message built from the search — never typed
by hand, never carrying personal data)."""

from collections.abc import Iterator

from dsr.errors import TransitionNotAllowed
from dsr.fulfilment.models import AccessPackage, FulfilmentRun, RunState, SystemRun, SystemStatus
from dsr.fulfilment.services import packages, runs
from dsr.models import DataSubjectRequest, Outcome
from dsr.services.audit import Actor
from dsr.services.staff_actions import request_complete


def _latest_run(request: DataSubjectRequest) -> FulfilmentRun:
    run = FulfilmentRun.objects.filter(request=request).order_by("-started_at", "-pk").first()
    if run is None:
        raise TransitionNotAllowed(f"No search has been started for {request.reference}.")
    if run.package_kind not in runs.PACKAGE_KINDS.values():  # an erasure, a restriction, an opt-out
        raise TransitionNotAllowed(f"{request.reference} is not answered with an access package.")
    return run


def package_build_now(*, request: DataSubjectRequest, actor: Actor) -> AccessPackage:
    """Build the package from the systems that have answered; the others are listed in it as
    requested (a slow processor never holds the answer past the deadline)."""
    if not request.is_open:
        raise TransitionNotAllowed(f"{request.reference} is closed.")
    run = _latest_run(request)
    if AccessPackage.objects.filter(run=run).exists():
        raise TransitionNotAllowed(f"The package for {request.reference} is already built.")
    if not SystemRun.objects.filter(run=run, status=SystemStatus.DONE).exists() and run.state == RunState.RUNNING:
        raise TransitionNotAllowed("No system has answered yet; wait for one, or ask the owners.")
    package = packages.package_build(run_id=run.pk)
    if package is None:
        raise TransitionNotAllowed(f"{request.reference} is closed; there is nothing to package.")
    return package


def package_download(*, package: AccessPackage, actor: Actor, by: str) -> Iterator[bytes]:
    return packages.package_stream(package=package, actor=actor, by=by)


def package_reissue(*, request: DataSubjectRequest, actor: Actor) -> AccessPackage:
    """A new expiry and the downloads reset, without searching again; the requester is told."""
    return packages.package_reissue(request=request, actor=actor)


def package_answer_send(*, request: DataSubjectRequest, actor: Actor) -> DataSubjectRequest:
    run = _latest_run(request)
    package = AccessPackage.objects.filter(run=run, purged_at__isnull=True).first()
    if package is None:
        raise TransitionNotAllowed(f"The package for {request.reference} is not built yet.")
    in_part = SystemRun.objects.filter(run=run).exclude(status=SystemStatus.DONE).exists()
    return request_complete(
        request=request,
        actor=actor,
        message=packages.answer_message(run, request.language),
        outcome=Outcome.COMPLIED_IN_PART if in_part else Outcome.COMPLIED,
    )
