"""What staff can do to a request, in one table that both doors read: the API (one POST endpoint
per entry, dsr.api.views) and the dashboard (a request's action forms and their confirmation,
and the bulk actions of the queue, dsr.dashboard). Each entry names the service that does the
work, its input (one definition of the fields, from which the API builds its serializer and the
dashboard its form), the permission it needs, the states it starts from (read off TRANSITIONS
and the services' own guards, so the table cannot offer what the one door refuses), its label
and what its confirmation says. A web-layer module: it calls services; no service imports it."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.utils.functional import Promise

from dsr.errors import InvalidInput
from dsr.models import DataSubjectRequest, DenialReason, Outcome, Status
from dsr.services import clock_events, staff_actions
from dsr.services.transitions import TRANSITIONS

WORK = "dsr.work_requests"
COMMENT = "dsr.comment_requests"


# --- Input: one definition of each field, built into a DRF serializer and a Django form ---------


@dataclass(frozen=True)
class Text:
    """A string. `blank`: it may be empty (the dashboard's field is optional); `optional`: the
    API body may leave it out (it is then empty)."""

    name: str
    max_length: int
    label: str
    rows: int = 0  # a text area this many rows high; 0: one line
    blank: bool = False
    optional: bool = False
    one_line: bool = False  # no line breaks or control characters (dsr.validators.single_line)
    help_text: str = ""  # the API's description of the field


@dataclass(frozen=True)
class Flag:
    """A yes/no; no by default."""

    name: str
    label: str


@dataclass(frozen=True)
class Choice:
    """One of `choices` (value, the label the API documents). With a `default` the API body may
    leave it out; `form_labels` words some choices differently on the dashboard."""

    name: str
    choices: tuple[tuple[str, str | Promise], ...]
    label: str
    default: str = ""
    form_labels: tuple[tuple[str, str], ...] = ()


InputField = Text | Flag | Choice


@dataclass(frozen=True, eq=False)
class Input:
    """The body of an action. `name` is the API's serializer (and the schema's component) name;
    actions that take the same body share one Input."""

    name: str
    fields: tuple[InputField, ...]

    def values(self, data: Mapping) -> dict:
        """The validated values of this input's fields (a form's cleaned data holds more)."""
        return {f.name: data[f.name] for f in self.fields}


MESSAGE = Text("message", 10000, "Message to the requester", rows=4)

NOTE_IN = Input("VerifyIn", (Text("note", 5000, "Note on the evidence", rows=2, blank=True, optional=True),))
ASK_IN = Input(
    "MessageIn",
    (
        MESSAGE,
        Flag("for_identity", "This is about their identity (the GDPR clock may pause)"),
        Flag("id_document", "Ask for a copy of a government ID (deleted after the decision)"),
    ),
)
EXTEND_IN = Input("ExtendIn", (Text("reason", 5000, "Reason (the requester will read it)", rows=3),))
COMPLETE_IN = Input(
    "CompleteIn",
    (
        MESSAGE,
        Choice(
            "outcome",
            ((Outcome.COMPLIED, Outcome.COMPLIED.label), (Outcome.COMPLIED_IN_PART, Outcome.COMPLIED_IN_PART.label)),
            "Outcome",
            default=Outcome.COMPLIED,
            form_labels=(
                (Outcome.COMPLIED, "Done in whole"),
                (Outcome.COMPLIED_IN_PART, "Done in part (say what was kept and why)"),
            ),
        ),
    ),
)
DENY_IN = Input("DenyIn", (Choice("reason_category", tuple(DenialReason.choices), "Reason category"), MESSAGE))
REASON_IN = Input("ReasonIn", (Text("reason", 5000, "Reason", rows=2),))
TEAM_MESSAGE_IN = Input("TeamMessageIn", (MESSAGE,))
ASSIGN_IN = Input(
    "AssignIn",
    (
        Text(
            "assignee",
            150,
            "Assign to (username; blank to unassign)",
            blank=True,
            one_line=True,
            help_text="Username; blank to unassign.",
        ),
    ),
)
INTERNAL_NOTE_IN = Input("InternalNoteIn", (Text("text", 10000, "Internal note (staff only)", rows=3),))


# --- The states an action starts from ------------------------------------------------------------

ALL_STATUSES = frozenset(Status.values)


def moves_to(to_status: str, *, only_from: frozenset[str] = ALL_STATUSES) -> frozenset[str]:
    """The states from which request_transition lets a request move to `to_status`, narrowed to
    `only_from` as the service narrows them."""
    return frozenset(s for s, allowed in TRANSITIONS.items() if s in only_from and to_status in allowed)


def _reopen_refusal(request_obj: DataSubjectRequest) -> str | None:
    # Reopening goes back to work or back to verification, as the service decides for this request:
    # that move must be in TRANSITIONS from the request's state.
    to_status = staff_actions.reopened_status(request_obj)
    if to_status in TRANSITIONS[request_obj.status]:
        return None
    return f"{request_obj.reference} cannot become {Status(to_status).label.lower()} from {request_obj.status}."


# --- Assign: the one lookup of the user, for the API, the request page and the bulk action ---------


def assignee_from_username(username: str):
    """The user a username names, or None for blank (unassign). Whether they may be given requests
    is the service's rule (request_assign)."""
    username = username.strip()
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise InvalidInput(f"There is no user '{username}'.", field="assignee")
    return user


def _assign_arguments(values: dict) -> dict:
    return {"assignee": assignee_from_username(values["assignee"])}


# --- The table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    name: str  # the URL segment in both doors, and the API's operation id `requests_<name>`
    label: str
    confirm: str  # what the dashboard's confirmation page says will happen
    summary: str  # the API's description of the endpoint
    input: Input
    service: Callable[..., DataSubjectRequest]  # called with request=, actor= and the arguments
    permission: str = WORK
    allowed_from: frozenset[str] = ALL_STATUSES
    # A guard beyond the state, read off the service (extend: once, before the original deadline).
    refusal: Callable[[DataSubjectRequest], str | None] | None = None
    # The service's keyword arguments from the validated input (by default the input itself).
    arguments: Callable[[dict], dict] = field(default=dict)
    in_api: bool = True

    def allows(self, request_obj: DataSubjectRequest) -> bool:
        """Whether the request's state lets this action go through (the service stays the judge)."""
        return request_obj.status in self.allowed_from and (self.refusal is None or self.refusal(request_obj) is None)

    def prepare(self, data: Mapping) -> dict:
        """The service's arguments from validated input; raises InvalidInput (an unknown user)."""
        return self.arguments(self.input.values(data))

    def run(self, *, request: DataSubjectRequest, actor, arguments: dict) -> DataSubjectRequest:
        return self.service(request=request, actor=actor, **arguments)


S = Status
ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action(
            name="verify",
            label="Verify identity",
            confirm="Record the requester's identity as verified. The requester is told by email.",
            summary="Record the requester's identity as verified by staff, with a note on the evidence.",
            input=NOTE_IN,
            service=staff_actions.request_verify,
            allowed_from=moves_to(S.VERIFIED),
        ),
        Action(
            name="ask",
            label="Ask for information",
            confirm="The requester will read this message and can answer on their status page.",
            summary="Ask the requester for more information.",
            input=ASK_IN,
            service=staff_actions.request_information_ask,
            allowed_from=moves_to(S.AWAITING_REQUESTER),
        ),
        Action(
            name="extend",
            label="Extend the deadline",
            confirm="Extend once: CCPA by 45 days, GDPR by two months. The requester reads the reason.",
            summary="Extend the deadline once, with a reason, before the original deadline "
            "(CCPA +45 days, GDPR +2 months).",
            input=EXTEND_IN,
            service=clock_events.request_extend,
            refusal=clock_events.extension_refusal,
        ),
        Action(
            name="approve",
            label="Approve and start work",
            confirm="Start fulfilling the request. The requester is told work has started.",
            summary="Start fulfilling a verified request.",
            input=NOTE_IN,
            service=staff_actions.request_approve,
            allowed_from=moves_to(S.IN_PROGRESS, only_from=staff_actions.APPROVE_FROM),
        ),
        Action(
            name="complete",
            label="Mark done",
            confirm="Close the request as done. The requester will read your summary.",
            summary="Close the request as done, with a message to the requester saying what was done.",
            input=COMPLETE_IN,
            service=staff_actions.request_complete,
            allowed_from=moves_to(S.COMPLETED),
        ),
        Action(
            name="deny",
            label="Deny",
            confirm="Refuse the request. The requester will read your message word for word; GDPR requesters are also "
            "told of their right to complain.",
            summary="Deny the request with a reason category and a message the requester will read.",
            input=DENY_IN,
            service=staff_actions.request_deny,
            allowed_from=moves_to(S.DENIED),
        ),
        Action(
            name="cancel",
            label="Cancel",
            confirm="Cancel the request (withdrawn, duplicate). The requester is told, with the reason.",
            summary="Cancel the request (withdrawn by the requester, duplicate), with a reason.",
            input=REASON_IN,
            service=staff_actions.request_cancel,
            allowed_from=moves_to(S.CANCELLED),
        ),
        Action(
            name="reopen",
            label="Reopen",
            confirm="Reopen a closed request. The requester is told, with the reason.",
            summary="Reopen a closed request, with a reason.",
            input=REASON_IN,
            service=staff_actions.request_reopen,
            allowed_from=staff_actions.REOPEN_FROM,
            refusal=_reopen_refusal,
        ),
        Action(
            name="message",
            label="Message the requester",
            confirm="Send this message to the requester by email. The status does not change.",
            summary="Send the requester a message from the privacy team (no change of status).",
            input=TEAM_MESSAGE_IN,
            service=staff_actions.request_message_send,
        ),
        Action(
            name="assign",
            label="Assign",
            confirm="Give the request to this officer, who is told by email.",
            summary="Assign the request to a privacy officer (blank: unassign).",
            input=ASSIGN_IN,
            service=staff_actions.request_assign,
            arguments=_assign_arguments,
        ),
        # Reviewers add notes on the dashboard; the API is for privacy officers (IsPrivacyStaff) and
        # has no note endpoint.
        Action(
            name="note",
            label="Add an internal note",
            confirm="Add a note to the timeline. Only staff see it.",
            summary="Add an internal note to the timeline; the requester never sees it.",
            input=INTERNAL_NOTE_IN,
            service=staff_actions.request_note_add,
            permission=COMMENT,
            in_api=False,
        ),
    )
}

API_ACTIONS = tuple(a for a in ACTIONS.values() if a.in_api)


def actions_available(request_obj: DataSubjectRequest, user) -> list[Action]:
    """The actions `user` may take on the request in its current state, in the table's order."""
    return [a for a in ACTIONS.values() if user.has_perm(a.permission) and a.allows(request_obj)]


# --- Bulk actions on the queue: entries of the table with part of their input fixed -----------------


@dataclass(frozen=True)
class BulkAction:
    name: str  # the queue form's `bulk_action`
    label: str
    action: str  # the entry of ACTIONS it runs on each selected request
    fixed: Mapping[str, str] = field(default_factory=dict)  # input given here, not by the queue form


BULK_ACTIONS: dict[str, BulkAction] = {
    b.name: b
    for b in (
        BulkAction("assign", "Assign to", "assign"),
        BulkAction(
            "duplicate", "Close as duplicate", "cancel", {"reason": "Closed as a duplicate of another request."}
        ),
        BulkAction("spam", "Close as spam", "cancel", {"reason": "Closed as spam: not a genuine request."}),
    )
}
