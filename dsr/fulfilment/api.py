"""Fulfilment's staff API: start a request's search, read its progress, retry or switch a system,
build the package now, download it; and the data map, read-only. Each view checks the role
(IsPrivacyStaff: role and second factor) and the permission, calls one service, and serialises."""

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from dsr.api.permissions import ActionPermission, IsPrivacyStaff
from dsr.fulfilment import selectors
from dsr.fulfilment.datamap import DataMapError, datamap_load
from dsr.fulfilment.models import PackageKind, RunState, SystemStatus
from dsr.fulfilment.services import corrections, erasure, package_staff, propagation, runs
from dsr.models import DataSubjectRequest, RequestType
from dsr.services.audit import Actor

WORK = "dsr.work_requests"
VIEW = "dsr.view_datasubjectrequest"


class PackageOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PackageKind.choices)
    files = serializers.IntegerField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    downloads = serializers.IntegerField()
    max_downloads = serializers.IntegerField()


class SystemRunOut(serializers.Serializer):
    system = serializers.CharField()
    kind = serializers.CharField()
    status = serializers.ChoiceField(choices=SystemStatus.choices)
    records = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField())
    error = serializers.CharField(allow_blank=True)
    attempts = serializers.IntegerField()
    requested_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    waiting_for = serializers.CharField(allow_blank=True)


class FulfilmentOut(serializers.Serializer):
    state = serializers.ChoiceField(choices=[selectors.NOT_STARTED, *RunState.values])
    datamap_version = serializers.CharField(allow_null=True)
    package_kind = serializers.CharField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    systems = SystemRunOut(many=True)
    package = PackageOut(allow_null=True)
    plan = serializers.JSONField(allow_null=True, help_text="An erasure's plan per system and collection")
    told = serializers.JSONField(
        allow_null=True,
        help_text="A restriction's or an opt-out's systems and recipients told: per system its state "
        "(told, waiting, confirmed, failed) and dates",
    )
    corrections = serializers.JSONField(
        allow_null=True,
        help_text="A correction run's requested corrections, each beside the current values found per system, "
        "with the evidence and the officer's decision",
    )


class EmptyIn(serializers.Serializer):
    pass


class HealthOut(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField(allow_blank=True)
    latency_ms = serializers.FloatField(allow_null=True)
    checked_at = serializers.DateTimeField()


class FieldOut(serializers.Serializer):
    name = serializers.CharField()
    category = serializers.CharField()
    provided = serializers.BooleanField()
    never_disclose = serializers.BooleanField()
    others_data = serializers.BooleanField()


class CollectionOut(serializers.Serializer):
    name = serializers.CharField()
    identities = serializers.DictField(child=serializers.CharField())
    dated_by = serializers.CharField(allow_null=True)
    categories = serializers.ListField(child=serializers.CharField())
    flags = serializers.DictField(
        child=serializers.CharField(), help_text="action (restrict, opt_out_sale, limit_sensitive) -> the field set"
    )
    fields = FieldOut(many=True)  # type: ignore[assignment]  # a record's fields, not DRF's own


class RecipientOut(serializers.Serializer):
    name = serializers.CharField()
    category = serializers.CharField()
    purpose = serializers.CharField(allow_blank=True)
    sold = serializers.BooleanField()
    shared = serializers.BooleanField()
    contact = serializers.CharField(allow_blank=True, help_text="The address it is told at, if any")
    system = serializers.CharField(allow_blank=True, help_text="The http or manual system that stands for it, if any")


class SystemOut(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    owner = serializers.EmailField()
    description = serializers.CharField(allow_blank=True)
    categories = serializers.ListField(child=serializers.CharField())
    category_labels = serializers.ListField(child=serializers.CharField())
    sources = serializers.ListField(child=serializers.CharField())
    purposes = serializers.ListField(child=serializers.CharField())
    recipients = RecipientOut(many=True)
    retention = serializers.CharField(allow_blank=True)
    references = serializers.ListField(child=serializers.CharField())
    collections = CollectionOut(many=True)
    health = HealthOut(allow_null=True)


def _request(reference: str) -> DataSubjectRequest:
    return get_object_or_404(DataSubjectRequest, reference=reference)


def _status(obj: DataSubjectRequest, code=status.HTTP_200_OK) -> Response:
    return Response(FulfilmentOut(selectors.fulfilment_status(obj)).data, status=code)


class _Staff(APIView):
    permission = VIEW

    def get_permissions(self):
        return [IsPrivacyStaff(), ActionPermission(self.permission)]


class FulfilmentStatus(_Staff):
    @extend_schema(responses=FulfilmentOut, tags=["fulfilment"], operation_id="fulfilment_status")
    def get(self, request, reference):
        return _status(_request(reference))


class FulfilmentStart(_Staff):
    permission = WORK

    @extend_schema(
        request=EmptyIn,
        responses={202: FulfilmentOut, 409: OpenApiResponse(description="Not verified, closed, or a search runs")},
        tags=["fulfilment"],
        operation_id="fulfilment_start",
    )
    def post(self, request, reference):
        obj = _request(reference)
        runs.fulfilment_start(request=obj, actor=Actor.staff(request.user))
        return _status(obj, status.HTTP_202_ACCEPTED)


class ErasureApprove(_Staff):
    """Approve the erasure plan shown (a second officer under four eyes); the last approval needed
    starts the erasure. 409 when nothing awaits approval, the plan has problems, or the same
    officer approves twice."""

    permission = WORK

    @extend_schema(
        request=EmptyIn,
        responses={
            202: FulfilmentOut,
            409: OpenApiResponse(description="Not awaiting approval, problems in the plan, or approved twice"),
        },
        tags=["fulfilment"],
        operation_id="fulfilment_approve",
    )
    def post(self, request, reference):
        obj = _request(reference)
        erasure.erasure_approve(request=obj, actor=Actor.staff(request.user), user_id=request.user.pk)
        return _status(obj, status.HTTP_202_ACCEPTED)


class CorrectionDecisionIn(serializers.Serializer):
    id = serializers.IntegerField()
    decision = serializers.ChoiceField(choices=["accept", "reject"])
    reason = serializers.CharField(allow_blank=True, required=False, help_text="Required for a rejection")


class CorrectionsDecide(_Staff):
    """Accept or reject the requested corrections, each with a reason (required for a rejection;
    §7023(b),(d), Art 16). Once every correction is decided the accepted ones are applied. 400
    (problem+json naming the item and field) for a bad body, 409 when nothing awaits a decision."""

    permission = WORK
    body_is_list = True  # the API's parser takes a list here (dsr.api.parsers)

    @extend_schema(
        request=CorrectionDecisionIn(many=True),
        responses={
            200: FulfilmentOut,
            400: OpenApiResponse(description="A bad body: the item and field are named"),
            409: OpenApiResponse(description="No corrections await a decision"),
        },
        tags=["fulfilment"],
        operation_id="fulfilment_corrections_decide",
    )
    def post(self, request, reference):
        obj = _request(reference)
        corrections.corrections_decide(request=obj, decisions=request.data, actor=Actor.staff(request.user))
        return _status(obj)


class CorrectionSystemRetell(_Staff):
    """Tell a system whose correction failed the same instruction again. 409 unless it failed."""

    permission = WORK

    @extend_schema(
        request=EmptyIn,
        responses={200: FulfilmentOut, 409: OpenApiResponse(description="The system did not fail")},
        tags=["fulfilment"],
        operation_id="fulfilment_corrections_retell",
    )
    def post(self, request, reference, system):
        obj = _request(reference)
        corrections.correction_system_retell(request=obj, system=system, actor=Actor.staff(request.user))
        return _status(obj)


class SystemRetry(_Staff):
    permission = WORK

    @extend_schema(request=EmptyIn, responses=FulfilmentOut, tags=["fulfilment"], operation_id="fulfilment_retry")
    def post(self, request, reference, system):
        obj = _request(reference)
        if obj.request_type in propagation.ACTIONS:  # a system told of a restriction or an opt-out
            propagation.propagation_retry(request=obj, system=system, actor=Actor.staff(request.user))
        elif obj.request_type == RequestType.RECTIFICATION:  # a system told a correction
            corrections.correction_system_retell(request=obj, system=system, actor=Actor.staff(request.user))
        else:
            runs.system_run_retry(request=obj, system=system, actor=Actor.staff(request.user))
        return _status(obj)


class SystemSwitchToManual(_Staff):
    permission = WORK

    @extend_schema(request=EmptyIn, responses=FulfilmentOut, tags=["fulfilment"], operation_id="fulfilment_manual")
    def post(self, request, reference, system):
        obj = _request(reference)
        runs.system_run_switch_to_manual(request=obj, system=system, actor=Actor.staff(request.user))
        return _status(obj)


class PackageBuildNow(_Staff):
    """Build the package with what the systems have answered so far (a slow processor is listed as
    "requested from X on date" instead of holding the answer past the deadline)."""

    permission = WORK

    @extend_schema(
        request=EmptyIn, responses=FulfilmentOut, tags=["fulfilment"], operation_id="fulfilment_package_build"
    )
    def post(self, request, reference):
        obj = _request(reference)
        package_staff.package_build_now(request=obj, actor=Actor.staff(request.user))
        return _status(obj)


class PackageDownload(_Staff):
    permission = WORK

    @extend_schema(
        responses={(200, "application/zip"): OpenApiResponse(description="The access package (ZIP)")},
        tags=["fulfilment"],
        operation_id="fulfilment_package_download",
    )
    def get(self, request, reference):
        obj = _request(reference)
        package = selectors.package_of(selectors.latest_run(obj))
        if package is None:
            raise NotFound(f"No access package has been built for {obj.reference}.")
        chunks = package_staff.package_download(package=package, actor=Actor.staff(request.user), by="staff")
        response = StreamingHttpResponse(chunks, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{obj.reference}-data.zip"'
        response["Content-Length"] = str(package.bytes)
        return response


class PackageReissue(_Staff):
    """Make the stored package downloadable again (a new expiry, downloads reset) without searching
    again; the requester is emailed. 409 once its file was deleted."""

    permission = WORK

    @extend_schema(
        request=EmptyIn,
        responses={200: FulfilmentOut, 409: OpenApiResponse(description="No package, or its file was deleted")},
        tags=["fulfilment"],
        operation_id="fulfilment_package_reissue",
    )
    def post(self, request, reference):
        obj = _request(reference)
        package_staff.package_reissue(request=obj, actor=Actor.staff(request.user))
        return _status(obj)


class SystemsList(_Staff):
    @extend_schema(responses=SystemOut(many=True), tags=["fulfilment"], operation_id="systems_list")
    def get(self, request):
        try:
            datamap = datamap_load()
        except DataMapError as error:
            raise runs.FulfilmentUnavailable(str(error)) from None
        return Response(SystemOut(selectors.systems_of(datamap), many=True).data)
