"""Manual systems told what to do (issue 11): nobody can query them, so their owner gets a task with
the exact list — per collection the keys and fields, or the identities to look for — and the
private link of the existing manual-task machinery (services/manual_tasks.py, registered here by
dsr.fulfilment.wiring: connectors never import services). The owner confirms "done" (optionally
with counts) or "could not" with a reason on that page; the answer reaches the instruction
channel then. The handler itself never claims a confirmation: it answers pending."""

from __future__ import annotations

from collections.abc import Callable

from dsr.fulfilment.connectors.base import (
    INSTRUCTION_ACTIONS,
    Connector,
    ConnectorMisconfigured,
    Instructed,
    Instruction,
    Subject,
    instruction_handler_register,
)
from dsr.fulfilment.datamap import System

# Opens the owner's task for an instruction and emails them; returns what was asked (the timeline's).
OwnerInstructor = Callable[[System, Subject, Instruction], str]
_owner_instructor: list[OwnerInstructor] = []


def owner_instructor_register(function: OwnerInstructor) -> None:
    _owner_instructor[:] = [function]


@instruction_handler_register("manual", *INSTRUCTION_ACTIONS)
def manual_instruct(connector: Connector, subject: Subject, instruction: Instruction) -> Instructed:
    """Open (or open again) the owner's task for this instruction and email them its link."""
    if not _owner_instructor:
        raise ConnectorMisconfigured(f"{connector.system.name}: no owner task flow is registered")
    return Instructed(confirmed=False, pending=_owner_instructor[0](connector.system, subject, instruction))
