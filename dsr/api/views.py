"""The REST API. Each view validates input, calls one service, and serialises the result."""

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from dsr import selectors
from dsr.api import serializers as s
from dsr.deadlines import business_today
from dsr.errors import InvalidInput
from dsr.models import DataSubjectRequest
from dsr.ratelimit import client_ip, rate_limit_hit
from dsr.services import clock_events, intake, staff_actions
from dsr.services.audit import Actor

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
            request_type=v["type"], regime=v["regime"], email=v["email"], full_name=v["full_name"],
            language=v["language"], details=v["details"], intake=data.intake(gpc=gpc),
        )
        return Response({"reference": created.reference, "message": SUBMITTED_MESSAGE}, status=status.HTTP_201_CREATED)


class StaffRequestListCreate(GenericAPIView):
    serializer_class = s.RequestListOut

    @extend_schema(parameters=[s.RequestFilterIn], responses=s.RequestListOut(many=True), tags=["staff"])
    def get(self, request):
        filters = s.RequestFilterIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.requests_list(filters=filters.validated_data))
        return self.get_paginated_response(s.RequestListOut(page, many=True).data)

    @extend_schema(request=s.StaffRequestIn, responses={201: s.RequestDetailOut}, tags=["staff"])
    def post(self, request):
        data = s.StaffRequestIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        created = intake.request_submit(
            request_type=v["type"], regime=v["regime"], email=v["email"], full_name=v["full_name"],
            language=v["language"], details=v["details"], channel=v["channel"], received_at=v.get("received_at"),
            actor=Actor.staff(request.user), intake=data.intake(),
        )
        return _detail_response(created.reference, status.HTTP_201_CREATED)


def _detail_response(reference: str, code=status.HTTP_200_OK) -> Response:
    obj = selectors.request_detail(reference=reference)
    return Response(s.RequestDetailOut(obj, context={"today": business_today()}).data, status=code)


class StaffRequestDetail(APIView):
    @extend_schema(responses=s.RequestDetailOut, tags=["staff"])
    def get(self, request, reference):
        return _detail_response(reference)


class _Action(APIView):
    """POST {reference}/<action>/: validate, call the one service, answer with the request."""

    input_serializer = None

    def act(self, obj: DataSubjectRequest, actor: Actor, data: dict):  # pragma: no cover - overridden
        raise NotImplementedError

    def post(self, request, reference):
        obj = get_object_or_404(DataSubjectRequest, reference=reference)
        data = self.input_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        self.act(obj, Actor.staff(request.user), data.validated_data)
        return _detail_response(reference)


def _action(name, serializer, fn, doc):
    view = type(
        f"{name.title().replace('_', '')}Action",
        (_Action,),
        {"input_serializer": serializer, "act": lambda self, obj, actor, d: fn(obj, actor, d), "__doc__": doc},
    )

    def post(self, request, reference):  # a function of its own, so each action gets its own schema
        return _Action.post(self, request, reference)

    view.post = extend_schema(request=serializer, responses=s.RequestDetailOut, tags=["staff"], operation_id=f"requests_{name}")(post)
    return view


ExtendAction = _action(
    "extend", s.ExtendIn, lambda o, a, d: clock_events.request_extend(request=o, actor=a, reason=d["reason"]),
    "Extend the deadline once, with a reason, before the original deadline (CCPA +45 days, GDPR +2 months).",
)
DenyAction = _action(
    "deny", s.DenyIn,
    lambda o, a, d: staff_actions.request_deny(request=o, actor=a, reason_category=d["reason_category"], message=d["message"]),
    "Deny the request with a reason category and a message the requester will read.",
)
VerifyAction = _action(
    "verify", s.VerifyIn, lambda o, a, d: staff_actions.request_verify(request=o, actor=a, note=d["note"]),
    "Record the requester's identity as verified by staff, with a note on the evidence.",
)
ApproveAction = _action(
    "approve", s.VerifyIn, lambda o, a, d: staff_actions.request_approve(request=o, actor=a, note=d["note"]),
    "Start fulfilling a verified request.",
)
CompleteAction = _action(
    "complete", s.CompleteIn,
    lambda o, a, d: staff_actions.request_complete(request=o, actor=a, message=d["message"], outcome=d["outcome"]),
    "Close the request as done, with a message to the requester saying what was done.",
)
CancelAction = _action(
    "cancel", s.ReasonIn, lambda o, a, d: staff_actions.request_cancel(request=o, actor=a, reason=d["reason"]),
    "Cancel the request (withdrawn by the requester, duplicate), with a reason.",
)
ReopenAction = _action(
    "reopen", s.ReasonIn, lambda o, a, d: staff_actions.request_reopen(request=o, actor=a, reason=d["reason"]),
    "Reopen a closed request, with a reason.",
)
AskAction = _action(
    "ask", s.MessageIn,
    lambda o, a, d: staff_actions.request_information_ask(
        request=o, actor=a, message=d["message"], for_identity=d["for_identity"], id_document=d["id_document"]
    ),
    "Ask the requester for more information.",
)
MessageAction = _action(
    "message", s.TeamMessageIn,
    lambda o, a, d: staff_actions.request_message_send(request=o, actor=a, message=d["message"]),
    "Send the requester a message from the privacy team (no change of status).",
)


def _assign(obj, actor, data):
    username = data["assignee"].strip()
    assignee = None
    if username:
        assignee = get_user_model().objects.filter(username=username).first()
        if assignee is None:
            raise InvalidInput(f"There is no user '{username}'.", field="assignee")
    return staff_actions.request_assign(request=obj, actor=actor, assignee=assignee)


AssignAction = _action("assign", s.AssignIn, _assign, "Assign the request to a privacy officer (blank: unassign).")
