"""Manual systems told what to do (issue 11): nobody can query them, so their owner gets a task with
the exact list — per collection the keys and fields, or the identities to look for — and the
private link of the existing manual-task machinery (services/manual_tasks.py). The owner confirms
"done" (optionally with counts) or "could not" with a reason on that page; the answer reaches the
instruction channel then. The handler itself never claims a confirmation: it answers pending."""

from __future__ import annotations

from dsr.fulfilment.connectors.base import (
    INSTRUCTION_ACTIONS,
    Connector,
    Instructed,
    Instruction,
    Subject,
    instruction_handler_register,
)


@instruction_handler_register("manual", *INSTRUCTION_ACTIONS)
def manual_instruct(connector: Connector, subject: Subject, instruction: Instruction) -> Instructed:
    """Open (or open again) the owner's task for this instruction and email them its link."""
    # The services import the connectors: imported here, when a system is told, not at import.
    from dsr.fulfilment.services import manual_tasks

    asked = manual_tasks.manual_instruction_open(system=connector.system, subject=subject, instruction=instruction)
    return Instructed(confirmed=False, pending=asked)
