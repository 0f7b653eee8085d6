"""The instruction channel's tasks, kept for the test to run like a worker (eager Celery would run
them inside the transaction that queued them), and a loop that runs the erasure's tasks and the
channel's together until nothing is queued."""

import pytest

from dsr.fulfilment.services import instructions
from tests.fulfilment.erasure_fakes import run_queued


@pytest.fixture
def channel(monkeypatch):
    queued: list[tuple[int, float]] = []
    monkeypatch.setattr(instructions, "_queue", [lambda pk, countdown=0: queued.append((pk, countdown))])
    return queued


def run_channel(channel, capture) -> int:
    ran = 0
    while channel:
        pk, _ = channel.pop(0)
        with capture(execute=True):
            instructions.instruction_execute(system_run_id=pk)
        ran += 1
    return ran


def run_all(queued, channel, capture) -> None:
    """Run every queued erasure and instruction task (and those they queue)."""
    while True:
        run_queued(queued, capture)
        if not run_channel(channel, capture):
            return
