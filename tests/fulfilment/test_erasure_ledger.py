"""The erasure ledger: keyed HMACs only, and `dsr_erasure_replay` erasing again what a restored
backup brought back (the identities from the request records kept under §7101)."""

import io

import pytest
from django.core.management import CommandError, call_command

from dsr.event_types import EventType
from dsr.fulfilment.models import ErasureLedgerEntry
from dsr.fulfilment.services import erasure, runs
from dsr.services.audit import Actor
from tests.fulfilment import erasure_fakes as fakes
from tests.fulfilment.conftest import verified_request
from tests.fulfilment.erasure_fakes import erasing_systems, run_queued  # noqa: F401

pytestmark = pytest.mark.django_db


def _erased(officer, queued, capture, email="bench1@example.com"):
    req = verified_request(officer=officer, request_type="erasure", email=email)
    with capture(execute=True):
        runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    run_queued(queued, capture)
    with capture(execute=True):
        erasure.erasure_approve(request=req, actor=Actor.staff(officer), user_id=officer.pk)
    run_queued(queued, capture)
    return req


def _replay(*args):
    out = io.StringIO()
    call_command("dsr_erasure_replay", *args, stdout=out)
    return out.getvalue()


def _restore(email="bench1@example.com"):
    """A backup from before the erasure is restored: the rows are back."""
    fakes.STORE["alpha"]["people"][1] = {"id": 1, "email": email}
    fakes.STORE["alpha"]["invoices"][10] = {"id": 10, "email": email, "total": 99}
    fakes.STORE["beta"]["rows"][7] = {"id": 7, "email": email}


def test_the_ledger_holds_keyed_hashes_never_the_identity(officer, erasing_systems, django_capture_on_commit_callbacks,
                                                          settings):  # fmt: skip
    req = _erased(officer, erasing_systems, django_capture_on_commit_callbacks)
    entry = ErasureLedgerEntry.objects.get(reference=req.reference)
    digest = entry.identity_digests[0]
    assert digest.startswith("email:") and len(digest) == len("email:") + 64 and "bench1" not in digest
    settings.DSR_LEDGER_KEY = "another key"
    assert erasure.identity_digest("email", "bench1@example.com") != digest  # keyed: the key decides


def test_replay_after_a_restore_erases_the_rows_again(officer, erasing_systems, django_capture_on_commit_callbacks):
    req = _erased(officer, erasing_systems, django_capture_on_commit_callbacks)
    assert "nothing found again" in _replay("--since", "2000-01-01")
    _restore()
    dry = _replay("--since", "2000-01-01", "--dry-run")
    assert f"{req.reference} alpha: found 2 rows again; would erase them (dry run)" in dry
    assert 1 in fakes.STORE["alpha"]["people"]  # a dry run changes nothing
    out = _replay("--since", "2000-01-01")
    assert f"{req.reference} alpha: found 2 rows again; erased (people: 1 deleted, 0 masked" in out
    assert f"{req.reference} beta: found 1 rows again; erased" in out
    assert 1 not in fakes.STORE["alpha"]["people"] and fakes.STORE["beta"]["rows"] == {}
    assert fakes.STORE["alpha"]["invoices"][10] == {"id": 10, "email": None, "total": 99}
    assert 2 in fakes.STORE["alpha"]["people"]  # a stranger's row stays
    replayed = [e for e in req.events.all() if e.event_type == EventType.ERASURE_REPLAYED]
    assert {e.data["system"] for e in replayed} == {"alpha", "beta"}


def test_replay_skips_entries_before_the_date(officer, erasing_systems, django_capture_on_commit_callbacks):
    _erased(officer, erasing_systems, django_capture_on_commit_callbacks)
    _restore()
    assert "0 ledger entries" in _replay("--since", "2999-01-01")
    assert 1 in fakes.STORE["alpha"]["people"]


def test_replay_exits_1_naming_a_failing_system_and_erases_the_others(
    officer, erasing_systems, django_capture_on_commit_callbacks
):
    req = _erased(officer, erasing_systems, django_capture_on_commit_callbacks)
    _restore()
    fakes.BEHAVIOUR["beta"] = ["fail"]
    with pytest.raises(CommandError, match=f"replay failed for: {req.reference} beta"):
        _replay("--since", "2000-01-01")
    assert 1 not in fakes.STORE["alpha"]["people"] and 7 in fakes.STORE["beta"]["rows"]


def test_a_ledger_key_that_changed_is_named_not_guessed(officer, erasing_systems, django_capture_on_commit_callbacks,
                                                        settings):  # fmt: skip
    _erased(officer, erasing_systems, django_capture_on_commit_callbacks)
    _restore()
    settings.DSR_LEDGER_KEY = "rotated"
    with pytest.raises(CommandError):
        _replay("--since", "2000-01-01")
    assert 1 in fakes.STORE["alpha"]["people"]


def test_a_bad_date_is_refused_clearly(db):
    with pytest.raises(CommandError, match="not a date"):
        _replay("--since", "last week")
