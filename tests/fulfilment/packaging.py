"""What the access package tests share: a data map with a shop (customers, orders), a CRM and a
processor that answers later, fake connectors that stream the records a test sets, and a request
taken from approval to its package with the eager tasks of the test settings."""

from __future__ import annotations

import io
import json
import textwrap
import zipfile
from typing import Any

import pytest

from dsr.fulfilment.connectors import base as connectors
from dsr.fulfilment.connectors.base import Connector, Exported, Found, Health
from dsr.fulfilment.models import AccessPackage, FulfilmentRun
from dsr.fulfilment.services import packages
from dsr.services.audit import Actor
from dsr.services.staff_actions import request_approve
from tests.fulfilment.conftest import verified_request

MAP = textwrap.dedent(
    """
    systems:
      - name: shop
        description: The web shop.
        owner: shop@example.com
        kind: sql
        connection: {dsn_env: SHOP_DSN}
        sources: ["You, when you order"]
        purposes: ["Delivering orders"]
        retention: Orders 7 years (tax law).
        recipients:
          - {name: Parcel carriers, category: Service providers (delivery), purpose: Delivering orders}
          - {name: Ad partners, category: Third parties (advertising), shared: true}
        references: ["customer.id -> orders.customer_id"]
        collections:
          - name: customer
            identities: {email: email}
            fields:
              id: none
              email: {category: identifiers, provided: true}
              name: {category: identifiers, provided: true}
              ssn: {category: sensitive_personal_information, never_disclose: true}
              notes: {category: customer_records, provided: true, others_data: true}
              score: {category: inferences}
          - name: orders
            dated_by: ordered_at
            fields:
              id: none
              customer_id: none
              ordered_at: commercial_information
              item: {category: commercial_information, provided: true}
      - name: crm
        owner: crm@example.com
        kind: django
        sources: ["Our sales team"]
        purposes: ["Sales follow-up"]
        retention: 2 years
        collections:
          - name: contacts
            model: crm.Contact
            identities: {email: email}
            fields: {id: none, email: identifiers, segment: inferences}
      - name: processor
        owner: processor@example.com
        kind: http
        connection: {url: "https://processor.example/dsr", secret_env: PROCESSOR_SECRET}
        purposes: ["Payments"]
        collections:
          - name: payments
            identities: {email: email}
            fields: {id: none, email: identifiers, card: {category: customer_records, never_disclose: true}}
    """
)

# What each fake system holds: system -> [(collection, record)]; "pending" answers later.
RECORDS: dict[str, Any] = {}


class FakeConnector(Connector):
    kind = "fake"

    def find(self, subject):
        return Found({c.name: [] for c in self.system.collections})

    def export(self, subject, sink):
        held = RECORDS.get(self.system.name, [])
        if held == "pending":
            return Exported(pending=f"asked {self.system.name} for {subject.reference}")
        counts: dict[str, int] = {}
        for collection, record in held:
            sink.write(collection, record)
            counts[collection] = counts.get(collection, 0) + 1
        return Exported(counts=counts)

    def health(self):
        return Health(ok=True)


def shop_records(email: str = "bench1@example.com", *, orders: int = 3) -> list[tuple[str, dict]]:
    held = [
        (
            "customer",
            {
                "id": 7,
                "email": email,
                "name": "Sam Sample <script>alert(1)</script>",
                "ssn": "123-45-6789",
                "notes": "Call me back; my colleague a.colleague@other.example can help",
                "score": '=HYPERLINK("http://evil.example")',
            },
        )
    ]
    # Orders: one every 100 days back from today (the newest first).
    from datetime import timedelta

    from django.utils import timezone

    for n in range(orders):
        held.append(
            (
                "orders",
                {
                    "id": 100 + n,
                    "customer_id": 7,
                    "ordered_at": (timezone.now() - timedelta(days=100 * n + 1)).isoformat(),
                    "item": f"item {n}",
                },
            )
        )
    return held


@pytest.fixture
def package_systems(settings, tmp_path, monkeypatch):
    path = tmp_path / "datamap.yaml"
    path.write_text(MAP)
    settings.DSR_DATAMAP = str(path)
    for kind in ("sql", "django", "http"):
        monkeypatch.setitem(connectors.CONNECTORS, kind, FakeConnector)
    RECORDS.clear()
    RECORDS["shop"] = shop_records()
    RECORDS["crm"] = [("contacts", {"id": 1, "email": "bench1@example.com", "segment": "loyal"})]
    RECORDS["processor"] = [("payments", {"id": 9, "email": "bench1@example.com", "card": "4111111111111111"})]
    return path


def request_packaged(officer, capture, **kwargs) -> tuple[Any, AccessPackage]:
    """A verified request approved: the search runs (eager tasks) and the package is built."""
    req = verified_request(officer=officer, **kwargs)
    with capture(execute=True):
        request_approve(request=req, actor=Actor.staff(officer))
    run = FulfilmentRun.objects.get(request=req)
    package = AccessPackage.objects.filter(run=run).first()
    req.refresh_from_db()
    return req, package


def zip_of(package: AccessPackage, officer) -> zipfile.ZipFile:
    data = b"".join(packages.package_stream(package=package, actor=Actor.staff(officer), by="staff"))
    return zipfile.ZipFile(io.BytesIO(data))


def manifest_of(archive: zipfile.ZipFile) -> dict:
    return json.loads(archive.read("manifest.json"))
