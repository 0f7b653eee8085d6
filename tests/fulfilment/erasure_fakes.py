"""A fake erasing system for the erasure run's tests: an in-memory table per collection, planned,
erased and searched like a real connector would (the real ones have their own tests)."""

import textwrap

import pytest

from dsr.fulfilment.connectors import base as connectors
from dsr.fulfilment.connectors.base import Connector, ConnectorError, Erased, ErasurePlan, Found, Health, PlanChanged
from dsr.fulfilment.connectors.base import RowPlan
from dsr.fulfilment.datamap import RECIPIENT_RUN_PREFIX
from dsr.fulfilment.models import SystemRun, SystemStatus
from dsr.fulfilment.services import erasure, instructions, runs

MAP = textwrap.dedent(
    """
    systems:
      - name: alpha
        owner: alpha@example.com
        kind: sql
        connection: {dsn_env: ALPHA_DSN}
        recipients:
          - name: Parcel carriers
            category: Service providers (delivery)
        collections:
          - name: people
            identities: {email: email}
            fields: {id: none, email: {category: identifiers, erasure: delete}}
          - name: invoices
            identities: {email: email}
            fields:
              id: none
              email: {category: identifiers, erasure: "null"}
              total: {category: commercial_information, erasure: keep, keep_reason: "Invoices are kept 7 years for tax law"}
      - name: beta
        owner: beta@example.com
        kind: django
        collections:
          - name: rows
            model: shop.Row
            identities: {email: email}
            fields: {id: none, email: {category: identifiers, erasure: delete}}
      - name: crm
        owner: sales@example.com
        kind: manual
        connection: {instructions: Search the sheet.}
        collections:
          - name: leads
            primary_key: email
            identities: {email: email}
            fields: {email: identifiers}
    """
)

# The same systems without the manual one: erasures that finish without anyone confirming.
MAP_ERASING_ONLY = MAP.split("  - name: crm")[0]

# system -> collection -> key -> row
STORE: dict[str, dict[str, dict[int, dict]]] = {}
# What each system does on erase, by name: "ok", "fail", "leave" (a row survives), "changed" (once).
BEHAVIOUR: dict[str, list[str]] = {}
PROBLEMS: dict[str, list[str]] = {}
ERASE_CALLS: list[str] = []


def seed(email: str = "bench1@example.com") -> None:
    STORE.clear()
    STORE["alpha"] = {
        "people": {1: {"id": 1, "email": email}, 2: {"id": 2, "email": "other@example.com"}},
        "invoices": {10: {"id": 10, "email": email, "total": 99}, 11: {"id": 11, "email": email, "total": 5}},
    }
    STORE["beta"] = {"rows": {7: {"id": 7, "email": email}}}


class FakeErasing(Connector):
    kind = "fake"

    def _mine(self, subject):
        email = subject.identities["email"]
        tables = STORE.get(self.system.name, {})
        return {c: sorted(k for k, row in rows.items() if row.get("email") == email) for c, rows in tables.items()}

    def find(self, subject):
        return Found(self._mine(subject))

    def export(self, subject, sink):
        raise AssertionError("an erasure never exports")

    def health(self):
        return Health(ok=True)

    def erase_plan(self, subject):
        rows = []
        for collection, keys in self._mine(subject).items():
            if collection == "invoices":
                rows.append(
                    RowPlan(
                        collection,
                        tuple(keys),
                        updates=(("email", "null"),),
                        kept=(("total", "Invoices are kept 7 years for tax law"),),
                    )
                )
            else:
                rows.append(RowPlan(collection, tuple(keys), delete=True))
        counts = {r.collection: {"deleted": len(r.keys) if r.delete else 0, "updated": 0 if r.delete else len(r.keys)}
                  for r in rows}  # fmt: skip
        return ErasurePlan(self.system.name, tuple(rows), tuple(PROBLEMS.get(self.system.name, ())), counts)

    def erase(self, subject, plan):
        ERASE_CALLS.append(self.system.name)
        steps = BEHAVIOUR.get(self.system.name, ["ok"])
        step = steps.pop(0) if len(steps) > 1 else steps[0]
        if step == "changed" or self.erase_plan(subject).digest() != plan.digest():
            raise PlanChanged(f"{self.system.name}: the person's rows changed since the plan")
        if step == "fail":
            raise ConnectorError(f"{self.system.name}: the connection dropped; rolled back")
        tables = STORE[self.system.name]
        counts = {}
        for row in plan.rows:
            keys = row.keys[1:] if step == "leave" else row.keys
            if row.delete:
                for key in keys:
                    del tables[row.collection][key]
                counts[row.collection] = {"deleted": len(keys), "updated": 0}
            else:
                for key in keys:
                    for field, _strategy in row.updates:
                        tables[row.collection][key][field] = None
                counts[row.collection] = {"deleted": 0, "updated": len(keys)}
        return Erased(counts=counts, fields={})


def erasing_systems_install(settings, tmp_path, monkeypatch, text):
    path = tmp_path / "datamap.yaml"
    path.write_text(text)
    settings.DSR_DATAMAP = str(path)
    monkeypatch.setitem(connectors.CONNECTORS, "sql", FakeErasing)
    monkeypatch.setitem(connectors.CONNECTORS, "django", FakeErasing)
    seed()
    BEHAVIOUR.clear()
    PROBLEMS.clear()
    ERASE_CALLS.clear()
    queued: dict[str, list] = {"plan": [], "erase": [], "system": [], "verify": [], "countdowns": []}
    monkeypatch.setitem(erasure._queue, "plan", lambda pk: queued["plan"].append(pk))

    def erase(pk, countdown=0):
        queued["erase"].append(pk)
        queued["countdowns"].append(countdown)

    monkeypatch.setitem(erasure._queue, "erase", erase)
    monkeypatch.setitem(erasure._queue, "verify", lambda pk: queued["verify"].append(pk))
    monkeypatch.setitem(runs._queue, "system", lambda pk, countdown=0: queued["system"].append(pk))
    return queued


@pytest.fixture
def erasing_systems(settings, tmp_path, monkeypatch):
    """alpha (sql) and beta (django): an erasure that needs nobody's confirmation (a manual
    system's erasure is told and confirmed: tests/fulfilment/test_erasure_remote.py)."""
    return erasing_systems_install(settings, tmp_path, monkeypatch, MAP_ERASING_ONLY)


erasing_only = erasing_systems


def run_queued(queued, capture, *, recipients_confirm: bool = True):
    """Run every queued erasure task (and those they queue), like a worker would; the recipients
    told once every system is erased confirm at once unless `recipients_confirm=False` (what they
    are told and how the run waits for them: test_erasure_recipients.py)."""
    while queued["plan"] or queued["erase"] or queued.get("verify"):
        name = "plan" if queued["plan"] else "erase" if queued["erase"] else "verify"
        pk = queued[name].pop(0)
        with capture(execute=True):
            if name == "plan":
                erasure.erasure_system_plan(system_run_id=pk)
            elif name == "erase":
                erasure.erasure_system_execute(system_run_id=pk)
            else:
                erasure.erasure_system_verify(system_run_id=pk)
    if recipients_confirm:
        recipients_confirmed(capture)


def recipients_confirmed(capture):
    """Every recipient told (and waiting) confirms, as its contact would through the owner's link."""
    waiting = SystemRun.objects.filter(system__startswith=RECIPIENT_RUN_PREFIX, status=SystemStatus.WAITING)
    for pk in list(waiting.values_list("pk", flat=True)):
        with capture(execute=True):
            instructions.instruction_confirm(system_run_id=pk, counts={}, by="recipient's contact")
