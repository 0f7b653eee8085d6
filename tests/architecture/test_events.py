"""Typed events: every kind on the timeline and the audit chain is an EventType member, built by
its one constructor in dsr.services.events; the stored strings are the ones written before the
enum (the chain hashes them, so existing rows keep verifying); every member is written somewhere
or is documented as legacy."""

import ast

import pytest
from anymail.signals import EventType as AnymailEventType

from dsr.event_types import LEGACY_EVENT_TYPES, EventType
from dsr.services import events
from dsr.services.audit import Actor, Event, audit_event_record
from dsr.templatetags.dsr_tags import PUBLIC_EVENT_LABELS, STAFF_EVENT_LABELS
from tests.factories import request_create
from tests.support import ROOT

PACKAGE = ROOT / "dsr"

# The strings the services wrote as free text before the enum, and the migration's seal. They
# are in stored, hashed rows: none may change.
WRITTEN_BEFORE = {
    "received",
    "verification_not_required",
    "verification_started",
    "organisation_not_found",
    "forwarded_to_organisation",
    "duplicate_received",
    "linked_as_duplicate",
    "verified",
    "approved",
    "completed",
    "denied",
    "cancelled",
    "reopened",
    "information_requested",
    "clock_resumed",
    "requester_replied",
    "extended",
    "acknowledged",
    "flagged",
    "team_message",
    "assigned",
    "internal_note",
    "verification_link_sent",
    "email_verified",
    "identity_checked",
    "treated_as_categories",
    "identity_review_required",
    "reauthentication_failed",
    "document_received",
    "identity_document_deleted",
    "acknowledgement_due",
    "response_due_soon",
    "overdue",
    "audit_chain_keyed",
    # Fulfilment (issue 10)
    "fulfilment_started",
    "fulfilment_system_requested",
    "fulfilment_system_done",
    "fulfilment_system_failed",
    "fulfilment_system_retried",
    "fulfilment_system_switched_to_manual",
    "fulfilment_manual_answered",
    "fulfilment_finished",
    "package_built",
    "package_code_sent",
    "package_downloaded",
    "package_purged",
    "package_reissued",
    # Opt-outs (issue 11)
    "suppression_added",
    # Erasure (issue 11)
    "erasure_planned",
    "erasure_approved",
    "erasure_plan_changed",
    "erasure_executed",
    "erasure_verified",
    "erasure_failed",
    "erasure_replayed",
    # Instructions (issue 11)
    "instruction_sent",
    "instruction_confirmed",
    "instruction_failed",
    # Corrections (issue 11)
    "correction_values_read",
    "correction_read_failed",
    "corrections_decided",
    "corrections_passed_on",
    "correction_statement_received",
}
# What the tracking webhook wrote: "email_" + anymail's normalised type (inbound is not served).
TRACKING_TYPES = {v for k, v in vars(AnymailEventType).items() if k.isupper()} - {"inbound", "inbound_failed"}


def _sources(exclude=()):
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts or path.relative_to(PACKAGE).as_posix() in exclude:
            continue
        yield path, ast.parse(path.read_text(), filename=str(path))


def _called_names(tree) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else "")
    return names


def _constructors() -> dict[str, set[str]]:
    """Each event_* constructor in dsr.services.events and the EventType members it names."""
    tree = ast.parse((PACKAGE / "services" / "events.py").read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("event_"):
            found[node.name] = {
                n.attr
                for n in ast.walk(node)
                if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "EventType"
            }
    return found


def test_the_stored_strings_are_those_written_before():
    assert set(EventType.values) == WRITTEN_BEFORE | {f"email_{t}" for t in TRACKING_TYPES}


def test_every_tracking_type_keeps_its_string_and_anything_else_is_unknown():
    for tracking_type in TRACKING_TYPES:
        assert events.email_event_type(tracking_type).value == f"email_{tracking_type}"
    assert events.email_event_type("made_up") == EventType.EMAIL_UNKNOWN
    event = events.event_email_tracked(
        tracking_type="bounced", email_id=1, template="received", to="a@example.org", detail=""
    )
    assert (event.type, event.actor.label) == (EventType.EMAIL_BOUNCED, "email provider")


def test_every_member_has_a_constructor_that_the_product_calls_or_is_legacy():
    constructors = _constructors()
    named = set().union(*constructors.values())
    tracked = {m.name for m in EventType if m.value.startswith("email_") and m.value[6:] in TRACKING_TYPES}
    legacy = {m.name for m in LEGACY_EVENT_TYPES}
    assert {m.name for m in EventType} - named - tracked - legacy == set()
    # Each constructor names exactly one kind, and some module of the product calls it.
    assert all(len(kinds) == 1 for name, kinds in constructors.items() if name != "event_email_tracked")
    called = set().union(*(_called_names(tree) for _, tree in _sources(exclude={"services/events.py"})))
    assert set(constructors) - called == set()
    # The legacy kind is the migration's: it is written there and nowhere else.
    migration = (PACKAGE / "migrations" / "0011_audit_keys_tombstones.py").read_text()
    assert all(f'"{kind.value}"' in migration for kind in LEGACY_EVENT_TYPES)


def test_only_the_constructors_build_events_and_only_the_audit_service_writes_them():
    built_elsewhere, rows_elsewhere, free_strings = [], [], []
    for path, tree in _sources(exclude={"services/events.py", "services/audit.py", "event_types.py"}):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name == "Event":
                    built_elsewhere.append(f"{path.name}:{node.lineno}")
                if name == "AuditEvent" or (name in {"create", "bulk_create"} and "AuditEvent" in ast.unparse(func)):
                    rows_elsewhere.append(f"{path.name}:{node.lineno}")
                if name in {"audit_event_record", "request_transition"} and "event" not in {
                    k.arg for k in node.keywords
                }:
                    free_strings.append(f"{path.name}:{node.lineno}")
            # A kind matched or filtered by its string instead of its member.
            if isinstance(node, ast.Compare):
                for const in [node.left, *node.comparators]:
                    if (
                        isinstance(const, ast.Constant)
                        and const.value in EventType.values
                        and "event" in ast.unparse(node)
                    ):
                        free_strings.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.keyword) and node.arg == "event_type" and isinstance(node.value, ast.Constant):
                free_strings.append(f"{path.name}:{node.lineno}")
    assert (built_elsewhere, rows_elsewhere, free_strings) == ([], [], [])


def test_templates_match_no_kind_by_its_string():
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        assert "event_type ==" not in text and "event_type==" not in text, path


def test_the_timeline_labels_are_members():
    assert set(STAFF_EVENT_LABELS) >= set(PUBLIC_EVENT_LABELS)
    assert all(isinstance(kind, EventType) for kind in STAFF_EVENT_LABELS)


@pytest.mark.django_db
def test_a_free_string_is_refused_before_anything_is_written():
    r = request_create()
    before = r.events.count()
    with pytest.raises(ValueError):
        Event("test_move", Actor.system())
    with pytest.raises(ValueError):
        audit_event_record(request=r, event=Event("Verified", Actor.system()))  # not even a near miss
    assert r.events.count() == before
    row = audit_event_record(request=r, event=events.event_flagged(reason="a test"))
    assert type(row.event_type) is str and row.event_type == "flagged"  # stored as the plain string
