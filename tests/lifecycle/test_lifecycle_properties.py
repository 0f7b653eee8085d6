"""Property test of the lifecycle: any sequence of staff and requester actions, on any request
type under any regime, keeps the rules of the state machine.

- No request whose type needs verification is ever verified, in progress or completed without
  `verified_at`, and every such move in its audit trail comes after a `verified` event.
- Approve works only on a verified request; reopen only on a closed one.
- Every refused action raises InvalidInput or TransitionNotAllowed and leaves no new audit event,
  no new email (outbox row) and the request as it was.
"""

import re

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from dsr.errors import DsrError, InvalidInput, TransitionNotAllowed
from dsr.models import (
    CLOSED_STATUSES,
    TYPES_WITHOUT_VERIFICATION,
    AuditEvent,
    DataSubjectRequest,
    DemoCustomer,
    DenialReason,
    OutboundEmail,
    Regime,
    RequestType,
    Status,
)
from dsr.services import verification
from dsr.services.audit import Actor
from dsr.services.clock_events import request_extend
from dsr.services.events import event_team_message
from dsr.services.intake import request_requester_reply
from dsr.services.staff_actions import (
    request_approve,
    request_assign,
    request_cancel,
    request_complete,
    request_deny,
    request_information_ask,
    request_message_send,
    request_reopen,
    request_verify,
)
from dsr.services.transitions import TRANSITIONS, request_transition
from tests.factories import request_create

pytestmark = pytest.mark.django_db

EMAIL = "walker@example.org"
FORM_NAME = "Wanda Walker"
HELD = {"full_name": FORM_NAME, "phone": "+1 415 555 0199", "postal_code": "94110", "customer_number": "C-7788"}
WRONG = {"full_name": "Someone Else", "phone": "+1 212 555 0000", "postal_code": "10001", "customer_number": "C-0000"}

# States in which a request is being, or has been, worked on.
VERIFIED_STATUSES = frozenset({Status.VERIFIED, Status.IN_PROGRESS, Status.COMPLETED})

texts = st.sampled_from(["", "   ", "Reason given by the team.", "Zoë — ünïcode\nand a second line"])
claim_value = {field: st.sampled_from(["", HELD[field], WRONG[field], FORM_NAME]) for field in HELD}


def _snapshot(request_id: int):
    """The request's row as it matters here, with its numbers of events and emails."""
    row = DataSubjectRequest.objects.values_list(
        "status", "updated_at", "verified_at", "request_type", "respond_by", "assignee_id", "flagged_at"
    ).get(pk=request_id)
    return (
        *row,
        AuditEvent.objects.filter(request_id=request_id).count(),
        OutboundEmail.objects.filter(request_id=request_id).count(),
    )


class Lifecycle(RuleBasedStateMachine):
    """One request per run, in a transaction rolled back at the end of the run."""

    officer = None  # set by the test

    def __init__(self):
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.request_id = None
        self.staff = Actor.staff(self.officer)

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    @initialize(request_type=st.sampled_from(RequestType.values), regime=st.sampled_from(Regime.values))
    def submit(self, request_type, regime):
        DemoCustomer.objects.create(email=EMAIL, **HELD)
        self.request_id = request_create(request_type=request_type, regime=regime, email=EMAIL, full_name=FORM_NAME).pk

    @property
    def request(self) -> DataSubjectRequest:
        return DataSubjectRequest.objects.get(pk=self.request_id)

    def _attempt(self, action):
        """Run one action. A refusal must be one of the service errors and change nothing."""
        before = _snapshot(self.request_id)
        try:
            action(self.request)
        except (InvalidInput, TransitionNotAllowed):
            assert _snapshot(self.request_id) == before, (
                "a refused action changed the request, or left an event or an email"
            )
            return before[0], False
        except DsrError as exc:  # pragma: no cover - a failure to report, not a branch
            raise AssertionError(f"refused with {type(exc).__name__}, not InvalidInput/TransitionNotAllowed") from exc
        return before[0], True

    # --- Staff actions -----------------------------------------------------------------------------

    @rule(note=texts)
    def verify(self, note):
        self._attempt(lambda r: request_verify(request=r, actor=self.staff, note=note))

    @rule(message=texts, for_identity=st.booleans(), id_document=st.booleans())
    def ask(self, message, for_identity, id_document):
        self._attempt(
            lambda r: request_information_ask(
                request=r, actor=self.staff, message=message, for_identity=for_identity, id_document=id_document
            )
        )

    @rule(reason=texts)
    def extend(self, reason):
        self._attempt(lambda r: request_extend(request=r, actor=self.staff, reason=reason))

    @rule(note=texts)
    def approve(self, note):
        before, done = self._attempt(lambda r: request_approve(request=r, actor=self.staff, note=note))
        if done:
            assert before == Status.VERIFIED, f"approved from {before}"

    @rule(message=texts, outcome=st.sampled_from(["complied", "complied_in_part", "denied"]))
    def complete(self, message, outcome):
        self._attempt(lambda r: request_complete(request=r, actor=self.staff, message=message, outcome=outcome))

    @rule(message=texts, reason=st.sampled_from([*DenialReason.values, "nonsense"]))
    def deny(self, message, reason):
        self._attempt(lambda r: request_deny(request=r, actor=self.staff, reason_category=reason, message=message))

    @rule(reason=texts)
    def cancel(self, reason):
        self._attempt(lambda r: request_cancel(request=r, actor=self.staff, reason=reason))

    @rule(reason=texts)
    def reopen(self, reason):
        before, done = self._attempt(lambda r: request_reopen(request=r, actor=self.staff, reason=reason))
        if done:
            assert before in CLOSED_STATUSES, f"reopened from {before}"
        elif reason.strip():
            assert before not in CLOSED_STATUSES, f"a closed request ({before}) could not be reopened"

    @rule(message=texts)
    def message(self, message):
        self._attempt(lambda r: request_message_send(request=r, actor=self.staff, message=message))

    @rule(to_officer=st.booleans())
    def assign(self, to_officer):
        self._attempt(
            lambda r: request_assign(request=r, actor=self.staff, assignee=self.officer if to_officer else None)
        )

    @rule(to_status=st.sampled_from(Status.values))
    def any_transition(self, to_status):
        """The one door itself, asked for any move in the table or outside it."""
        # Any kind of event will do: the door's checks do not depend on it.
        self._attempt(
            lambda r: request_transition(
                request=r, to_status=to_status, event=event_team_message(actor=Actor.system(), message="a move")
            )
        )

    # --- Requester actions -------------------------------------------------------------------------

    @rule(message=texts)
    def requester_reply(self, message):
        self._attempt(lambda r: request_requester_reply(request=r, message=message))

    @rule()
    def resend_link(self):
        self._attempt(lambda r: verification.challenge_resend(request=r))

    @rule()
    def confirm_email(self):
        mail = (
            OutboundEmail.objects.filter(request_id=self.request_id, body_text__contains="/v/").order_by("-pk").first()
        )
        token = re.search(r"/v/([\w-]+)/", mail.body_text).group(1) if mail else "no-link-was-sent"
        self._attempt(lambda r: verification.challenge_confirm_link(token=token))

    @rule(data=st.data(), declared=st.booleans())
    def identity_match(self, data, declared):
        claims = {field: data.draw(strategy, label=field) for field, strategy in claim_value.items()}
        self._attempt(
            lambda r: verification.identity_match_submit(
                request=r, claims=claims, declaration_name=FORM_NAME if declared else "", declared=declared
            )
        )

    # --- What must always hold ---------------------------------------------------------------------

    @invariant()
    def never_worked_on_without_verification(self):
        if self.request_id is None:
            return
        status, request_type, verified_at = DataSubjectRequest.objects.values_list(
            "status", "request_type", "verified_at"
        ).get(pk=self.request_id)
        assert status in TRANSITIONS
        if request_type in TYPES_WITHOUT_VERIFICATION:
            return
        assert status not in VERIFIED_STATUSES or verified_at is not None, f"{status} without verification"
        verified_seen = False
        for event_type, to_status in (
            AuditEvent.objects.filter(request_id=self.request_id).order_by("seq").values_list("event_type", "to_status")
        ):
            verified_seen = verified_seen or event_type == "verified"
            assert to_status not in VERIFIED_STATUSES or verified_seen, (
                f"{event_type} → {to_status} before any verification"
            )


def test_no_sequence_of_actions_breaks_the_lifecycle_rules(officer):
    Lifecycle.officer = officer
    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=40,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
