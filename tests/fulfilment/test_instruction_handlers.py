"""The connector interface's `instruct`: each (kind, action) is one registered handler; a kind
with no handler for an action refuses it by name, and an unknown action cannot be registered."""

import pytest

from dsr.fulfilment.connectors.base import (
    INSTRUCTION_HANDLERS,
    ConnectorMisconfigured,
    Instructed,
    Instruction,
    Subject,
    connector_for,
    instruction_handler_register,
)
from dsr.fulfilment.datamap import datamap_parse

MAP = """
systems:
  - name: sheet
    owner: owner@example.com
    kind: manual
    collections:
      - name: leads
        identities: {email: email}
        fields: {id: none, email: identifiers}
"""
ANN = Subject(reference="DSR-TEST", identities={"email": "ann@example.com"}, request_type="erasure")


@pytest.fixture
def handlers():
    saved = dict(INSTRUCTION_HANDLERS)
    yield INSTRUCTION_HANDLERS
    INSTRUCTION_HANDLERS.clear()
    INSTRUCTION_HANDLERS.update(saved)


def test_a_kind_without_a_handler_refuses_the_action_by_name(handlers):
    handlers.pop(("manual", "limit_sensitive"), None)
    connector = connector_for(datamap_parse(MAP.encode()).systems[0])
    with pytest.raises(ConnectorMisconfigured, match="a manual system cannot be told to limit_sensitive"):
        connector.instruct(ANN, Instruction(action="limit_sensitive"))


def test_the_registered_handler_answers_for_its_kind_and_action_only(handlers):
    seen = []

    @instruction_handler_register("manual", "restrict")
    def restrict(connector, subject, instruction):
        seen.append((connector.system.name, subject.reference, instruction.note))
        return Instructed(confirmed=False, pending="asked the owner")

    connector = connector_for(datamap_parse(MAP.encode()).systems[0])
    answer = connector.instruct(ANN, Instruction(action="restrict", note="flag the rows"))
    assert answer == Instructed(confirmed=False, pending="asked the owner")
    assert seen == [("sheet", "DSR-TEST", "flag the rows")]
    handlers.pop(("manual", "opt_out_sale"), None)
    with pytest.raises(ConnectorMisconfigured):
        connector.instruct(ANN, Instruction(action="opt_out_sale"))


def test_an_unknown_action_cannot_be_registered():
    with pytest.raises(ValueError, match="unknown instruction actions"):
        instruction_handler_register("sql", "shred")
    with pytest.raises(ValueError):
        instruction_handler_register("sql")
