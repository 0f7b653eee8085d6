"""The REST API. Each view validates input, calls one service, and serialises the result."""

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import Throttled
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from dsr import actions, selectors
from dsr.api import serializers as s
from dsr.api.permissions import ActionPermission, IsPrivacyStaffReader
from dsr.csv_export import csv_writer
from dsr.deadlines import business_today
from dsr.models import DataSubjectRequest
from dsr.ratelimit import client_ip, rate_limit_hit
from dsr.services import intake
from dsr.services.audit import Actor
from dsr.services.suppression import suppression_scopes

SUBMITTED_MESSAGE = (
    "Your request has been received. We have sent the next steps to the email address you gave. "
    "If it does not arrive, check your spam folder or contact us."
)


class IntakeThrottle(BaseThrottle):
    """Submissions per client (DSR_INTAKE_RATE), counted by dsr.ratelimit like every other limit:
    the same client address (never a header the client wrote) and the same fallback when the shared
    cache is down. DRF answers 429 with Retry-After, as a problem (dsr.api.problems)."""

    def allow_request(self, request, view):
        self._wait = rate_limit_hit(scope="intake", key=client_ip(request))
        return self._wait is None

    def wait(self):
        return self._wait


class PublicRequestCreate(APIView):
    """Anyone may submit a request. The answer never depends on whether the email is known."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [IntakeThrottle]

    @extend_schema(request=s.PublicRequestIn, responses={201: s.PublicRequestOut}, tags=["public"])
    def post(self, request):
        data = s.PublicRequestIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        # The same per-address limit as the web form (the per-client limit is the throttle above).
        wait = rate_limit_hit(scope="form_email", key=v["email"])
        if wait:
            raise Throttled(wait=wait)
        gpc = request.headers.get("Sec-GPC", "").strip() == "1"
        created = intake.request_submit(
            request_type=v["type"],
            regime=v["regime"],
            email=v["email"],
            full_name=v["full_name"],
            language=v["language"],
            details=v["details"],
            intake=data.intake(gpc=gpc),
        )
        return Response({"reference": created.reference, "message": SUBMITTED_MESSAGE}, status=status.HTTP_201_CREATED)


def _detail_response(reference: str, code=status.HTTP_200_OK) -> Response:
    obj = selectors.request_detail(reference=reference)
    return Response(s.RequestDetailOut(obj, context={"today": business_today()}).data, status=code)


# Staff: the list, recording a request, one request, and one POST endpoint per action in
# dsr.actions (added below the class, each documented with its own body and operation id).
class StaffRequestViewSet(GenericViewSet):
    lookup_field = "reference"

    def get_permissions(self):
        entry = actions.ACTIONS.get(self.action or "")
        if entry is None:
            return super().get_permissions()
        # The action's own permission from the table, after IsPrivacyStaff (role, second factor).
        return [*super().get_permissions(), ActionPermission(entry.permission)]

    def get_serializer_class(self):
        # An action route's body (what OPTIONS describes); the list's rows elsewhere.
        entry = actions.ACTIONS.get(self.action_map.get("post", ""))
        return s.action_serializer(entry.input) if entry is not None else s.RequestListOut

    @extend_schema(parameters=[s.RequestFilterIn], responses=s.RequestListOut(many=True), tags=["staff"])
    def list(self, request):
        filters = s.RequestFilterIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.requests_list(filters=filters.validated_data))
        return self.get_paginated_response(s.RequestListOut(page, many=True).data)

    @extend_schema(request=s.StaffRequestIn, responses={201: s.RequestDetailOut}, tags=["staff"])
    def create(self, request):
        data = s.StaffRequestIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        created = intake.request_submit(
            request_type=v["type"],
            regime=v["regime"],
            email=v["email"],
            full_name=v["full_name"],
            language=v["language"],
            details=v["details"],
            channel=v["channel"],
            received_at=v.get("received_at"),
            actor=Actor.staff(request.user),
            intake=data.intake(),
        )
        return _detail_response(created.reference, status.HTTP_201_CREATED)

    @extend_schema(responses=s.RequestDetailOut, tags=["staff"])
    def retrieve(self, request, reference):
        return _detail_response(reference)

    def act(self, name: str, request, reference: str) -> Response:
        """POST {reference}/<name>/: validate the body, call the action's service, answer with the request."""
        entry = actions.ACTIONS[name]
        obj = get_object_or_404(DataSubjectRequest, reference=reference)
        data = s.action_serializer(entry.input)(data=request.data)
        data.is_valid(raise_exception=True)
        entry.run(request=obj, actor=Actor.staff(request.user), arguments=entry.prepare(data.validated_data))
        return _detail_response(reference)


def _action_endpoint(entry: actions.Action):
    """The @action for one entry of the table: its name, its body, its operation id."""
    name = entry.name

    def endpoint(self, request, reference):
        return self.act(name, request, reference)

    endpoint.__name__ = endpoint.__qualname__ = name
    endpoint.__doc__ = entry.summary
    routed = action(detail=True, methods=["post"], url_path=name, url_name=name)(endpoint)
    return extend_schema(
        request=s.action_serializer(entry.input),
        responses=s.RequestDetailOut,
        tags=["staff"],
        operation_id=f"requests_{name}",
    )(routed)


for _entry in actions.API_ACTIONS:
    setattr(StaffRequestViewSet, _entry.name, _action_endpoint(_entry))


# --- The suppression list, for the other systems that send mail or sell/share data ----------------
# Reading it needs a staff role that may read requests (reviewers too: it holds hashes only).


class SuppressionList(GenericAPIView):
    permission_classes = [IsPrivacyStaffReader]
    serializer_class = s.SuppressionOut

    @extend_schema(
        parameters=[s.SuppressionFilterIn],
        responses=s.SuppressionOut(many=True),
        tags=["suppressions"],
        operation_id="suppressions_list",
    )
    def get(self, request):
        filters = s.SuppressionFilterIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.suppressions_list(**filters.validated_data))
        return self.get_paginated_response(s.SuppressionOut(page, many=True).data)


SUPPRESSION_CSV_HEADER = ["hash", "scope", "source", "created_at"]


class _Echo:
    def write(self, value):
        return value


class SuppressionCsv(APIView):
    permission_classes = [IsPrivacyStaffReader]

    @extend_schema(
        parameters=[s.SuppressionFilterIn],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="hash,scope,source,created_at")},
        tags=["suppressions"],
        operation_id="suppressions_csv",
    )
    def get(self, request):
        filters = s.SuppressionFilterIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = selectors.suppressions_list(**filters.validated_data).values_list(
            "email_hash", "scope", "source", "created_at"
        )
        writer = csv_writer(_Echo())

        def lines():
            yield writer.writerow(SUPPRESSION_CSV_HEADER)
            for email_hash, scope, source, created_at in rows.iterator(chunk_size=2000):
                yield writer.writerow([email_hash, scope, source, created_at.isoformat()])

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        name = f"dsr-suppressions-{timezone.localdate().isoformat()}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class SuppressionCheck(APIView):
    """Is this address suppressed, and for what? Hashed here, so the key never leaves the product."""

    permission_classes = [IsPrivacyStaffReader]

    @extend_schema(
        request=s.SuppressionCheckIn,
        responses=s.SuppressionCheckOut,
        tags=["suppressions"],
        operation_id="suppressions_check",
    )
    def post(self, request):
        data = s.SuppressionCheckIn(data=request.data)
        data.is_valid(raise_exception=True)
        scopes = sorted(suppression_scopes(data.validated_data["email"]))
        return Response({"suppressed": bool(scopes), "scopes": scopes})
