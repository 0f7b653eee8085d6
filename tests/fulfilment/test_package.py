"""The access package, by parsing the ZIP: the files, each manifest SHA-256, record counts, what is
withheld and why, others' contact details redacted, the CCPA look-back against GDPR's none,
portability's provided fields, the report's language and escaping, the categories-only answer;
stored encrypted under private storage; built once; purged on every end state but completion,
expired and re-issued. The systems are fakes of the connector interface (tests/fulfilment/packaging.py)."""

import hashlib
import json
import tracemalloc
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from dsr.errors import TransitionNotAllowed
from dsr.event_types import EventType
from dsr.fulfilment.datamap import datamap_load
from dsr.fulfilment.models import AccessPackage, FulfilmentRun, RunState, SystemRun, SystemStatus
from dsr.fulfilment.results import fulfilment_dir, held_path
from dsr.fulfilment.services import package_staff, packages, runs
from dsr.models import OutboundEmail, Status
from dsr.services.audit import Actor
from dsr.services.staff_actions import request_approve, request_cancel, request_deny
from tests.fulfilment import packaging
from tests.fulfilment.conftest import verified_request
from tests.fulfilment.packaging import (
    RECORDS,
    manifest_of,
    request_packaged,
    shop_records,
    zip_of,
)

pytestmark = pytest.mark.django_db
package_systems = packaging.package_systems  # the fixture


def _events(req, kind):
    return [e for e in req.events.all() if e.event_type == kind]


def _records(archive, name):
    return json.loads(archive.read(name))


def test_the_zip_holds_the_report_the_data_files_and_a_manifest_whose_hashes_match(
    officer, package_systems, django_capture_on_commit_callbacks
):
    req, package = request_packaged(officer, django_capture_on_commit_callbacks)
    archive = zip_of(package, officer)
    names = sorted(archive.namelist())
    assert names == sorted(
        [
            "index.html",
            "manifest.json",
            *[
                f"data/{path}.{ext}"
                for path in ("shop/customer", "shop/orders", "crm/contacts", "processor/payments")
                for ext in ("json", "csv")
            ],
        ]
    )
    manifest = manifest_of(archive)
    assert manifest["reference"] == req.reference and manifest["kind"] == "records"
    assert manifest["datamap_version"] == hashlib.sha256(package_systems.read_bytes()).hexdigest()
    assert {f["name"] for f in manifest["files"]} == set(names) - {"manifest.json"}
    for entry in manifest["files"]:
        data = archive.read(entry["name"])
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    counts = {f["name"]: f["records"] for f in manifest["files"]}
    assert counts["data/shop/orders.json"] == counts["data/shop/orders.csv"] == 3
    assert counts["data/shop/customer.json"] == 1 and counts["index.html"] is None
    assert len(_records(archive, "data/shop/orders.json")) == 3
    assert archive.read("data/shop/orders.csv").decode().count("\n") == 4  # the header and 3 rows
    assert [(s["system"], s["status"], s["records"]) for s in manifest["systems"]] == [
        ("shop", "found", 4), ("crm", "found", 1), ("processor", "found", 1),
    ]  # fmt: skip
    # The package row says what the ZIP is; the download is exactly those bytes.
    data = b"".join(packages.package_stream(package=package, actor=Actor.staff(officer), by="staff"))
    assert (package.sha256, package.bytes, package.files) == (hashlib.sha256(data).hexdigest(), len(data), 10)
    assert package.expires_at - package.created_at == timedelta(days=settings.DSR_PACKAGE_DAYS)
    assert package.max_downloads == settings.DSR_PACKAGE_MAX_DOWNLOADS
    built = _events(req, EventType.PACKAGE_BUILT)
    assert len(built) == 1 and built[0].data["sha256"] == package.sha256
    # The per-system copies are gone once the package holds them.
    assert not SystemRun.objects.filter(run=package.run).exclude(result_name="").exists()
    assert not list((fulfilment_dir() / "results").rglob("*.enc"))


def test_never_disclosed_fields_are_held_not_shown_and_others_contacts_are_redacted(
    officer, package_systems, django_capture_on_commit_callbacks
):
    _, package = request_packaged(officer, django_capture_on_commit_callbacks)
    archive = zip_of(package, officer)
    customer = _records(archive, "data/shop/customer.json")[0]
    assert customer["ssn"] == "held, not shown" and "123-45-6789" not in archive.read("index.html").decode()
    assert customer["notes"] == "Call me back; my colleague [redacted] can help"
    assert _records(archive, "data/processor/payments.json")[0]["card"] == "held, not shown"
    for name in archive.namelist():
        text = archive.read(name).decode()
        assert "123-45-6789" not in text and "4111111111111111" not in text and "a.colleague@other.example" not in text
    withheld = {(w["system"], w["field"]): w for w in manifest_of(archive)["withheld"]}
    assert withheld[("shop", "ssn")]["category"] == "Sensitive personal information (§1798.140(ae))"
    assert "§7024(d)" in withheld[("shop", "ssn")]["reason"]
    assert "Art 15(4)" in withheld[("shop", "notes")]["reason"]
    html = archive.read("index.html").decode()
    assert '<td class="held">held, not shown (Sensitive personal information (§1798.140(ae)))</td>' in html


def test_the_report_escapes_what_systems_hold_and_the_csv_is_formula_safe(
    officer, package_systems, django_capture_on_commit_callbacks
):
    _, package = request_packaged(officer, django_capture_on_commit_callbacks)
    archive = zip_of(package, officer)
    html = archive.read("index.html").decode()
    assert "<script>" not in html and "Sam Sample &lt;script&gt;alert(1)&lt;/script&gt;" in html
    csv_text = archive.read("data/shop/customer.csv").decode()
    assert "'=HYPERLINK" in csv_text and ",=HYPERLINK" not in csv_text
    assert _records(archive, "data/shop/customer.json")[0]["score"].startswith("=HYPERLINK")  # JSON is data


@pytest.mark.parametrize("regime, kept", [("ccpa", 4), ("gdpr", 5)])
def test_ccpa_covers_twelve_months_where_gdpr_has_no_limit(
    officer, package_systems, django_capture_on_commit_callbacks, regime, kept
):
    RECORDS["shop"] = shop_records(orders=5)  # 1, 101, 201, 301 and 401 days old
    _, package = request_packaged(officer, django_capture_on_commit_callbacks, regime=regime)
    archive = zip_of(package, officer)
    orders = _records(archive, "data/shop/orders.json")
    assert [o["id"] for o in orders] == [100, 101, 102, 103, 104][:kept]
    assert {f["name"]: f["records"] for f in manifest_of(archive)["files"]}["data/shop/orders.csv"] == kept
    assert (manifest_of(archive)["since"] is None) == (regime == "gdpr")


def test_a_portability_copy_holds_only_what_the_person_provided(
    officer, package_systems, django_capture_on_commit_callbacks
):
    _, package = request_packaged(officer, django_capture_on_commit_callbacks, request_type="portability")
    archive = zip_of(package, officer)
    assert package.kind == "portable"
    assert _records(archive, "data/shop/customer.json") == [
        {"email": "bench1@example.com", "name": "Sam Sample <script>alert(1)</script>",
         "notes": "Call me back; my colleague [redacted] can help"},
    ]  # fmt: skip
    assert _records(archive, "data/shop/orders.json") == [{"item": "item 0"}, {"item": "item 1"}, {"item": "item 2"}]
    assert archive.read("data/shop/orders.csv").decode().splitlines()[0] == "item"
    assert _records(archive, "data/crm/contacts.json") == [{}]  # nothing there was provided by the person


def test_the_report_is_in_the_requests_language(officer, package_systems, django_capture_on_commit_callbacks):
    _, package = request_packaged(officer, django_capture_on_commit_callbacks, language="sv")
    html = zip_of(package, officer).read("index.html").decode()
    assert '<html lang="sv">' in html
    assert "Dina personuppgifter" in html and "Vad vi sökte i" in html and "Your personal data" not in html
    assert "sparas, visas inte" in html  # held, not shown


def test_a_request_for_categories_gets_the_categories_report_and_no_records(
    officer, package_systems, django_capture_on_commit_callbacks
):
    # The shop holds orders only, the CRM nothing: the answer lists what was actually found.
    RECORDS["shop"] = [r for r in shop_records() if r[0] == "orders"]
    RECORDS["crm"] = []
    _, package = request_packaged(officer, django_capture_on_commit_callbacks, request_type="access")
    archive = zip_of(package, officer)
    assert package.kind == "categories" and sorted(archive.namelist()) == ["index.html", "manifest.json"]
    manifest = manifest_of(archive)
    assert [f["name"] for f in manifest["files"]] == ["index.html"]
    assert [(s["system"], s["status"]) for s in manifest["systems"]] == [
        ("shop", "found"), ("crm", "nothing_found"), ("processor", "found"),
    ]  # fmt: skip
    html = archive.read("index.html").decode()
    assert "item 0" not in html and "bench1@example.com" not in html and '<th scope="col">ordered_at' not in html
    answer = packages.categories_answer(package.run, datamap_load())
    assert answer["systems"] == ["shop", "processor"]
    assert [c["slug"] for c in answer["categories"]] == ["commercial_information", "customer_records", "identifiers"]
    assert "Commercial information (purchases, products and services considered)" in html
    assert "Inferences drawn to create a profile" not in html.split("What we searched")[1].split("<h2 id=")[1]
    assert "Delivering orders" in html and "Third parties (advertising) (Ad partners)" in html


def test_the_stored_package_is_encrypted_under_private_storage(
    officer, package_systems, django_capture_on_commit_callbacks
):
    _, package = request_packaged(officer, django_capture_on_commit_callbacks)
    path = held_path(package.file_name)
    assert path.is_file() and fulfilment_dir().resolve() in path.parents
    assert str(settings.DSR_PRIVATE_FILES_DIR) in str(path)
    assert not str(path).startswith(str(settings.STATIC_ROOT))
    assert not settings.MEDIA_ROOT or not str(path).startswith(str(settings.MEDIA_ROOT))
    stored = path.read_bytes()
    assert not stored.startswith(b"PK") and stored.startswith(b"DSRE1")
    assert b"bench1@example.com" not in stored and b"manifest.json" not in stored
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_redelivered_build_builds_nothing_twice(officer, package_systems, django_capture_on_commit_callbacks):
    req, package = request_packaged(officer, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        again = packages.package_build(run_id=package.run_id)
    assert again.pk == package.pk and again.file_name == package.file_name
    assert AccessPackage.objects.count() == 1 and len(_events(req, EventType.PACKAGE_BUILT)) == 1
    assert len(list((fulfilment_dir() / "packages").iterdir())) == 1


def test_build_now_lists_a_processor_still_asked_as_requested(
    officer, package_systems, django_capture_on_commit_callbacks
):
    RECORDS["processor"] = "pending"
    req, package = request_packaged(officer, django_capture_on_commit_callbacks)
    assert package is None  # the run waits for the processor
    processor = SystemRun.objects.get(run__request=req, system="processor")
    assert processor.status == SystemStatus.RUNNING and processor.requested_at
    with django_capture_on_commit_callbacks(execute=True):
        package = package_staff.package_build_now(request=req, actor=Actor.staff(officer))
    archive = zip_of(package, officer)
    systems = {s["system"]: s for s in manifest_of(archive)["systems"]}
    assert systems["processor"]["status"] == "requested"
    assert systems["processor"]["requested_at"] == processor.requested_at.isoformat()
    assert "data/processor/payments.json" not in archive.namelist()
    day = f"{processor.requested_at:%Y-%m-%d}"
    assert f"Requested from processor on {day}; not answered yet" in archive.read("index.html").decode()
    message = packages.answer_message(package.run, "en")
    assert f"processor: requested from processor on {day}" in message
    assert "shop: we found 4 records." in message and "crm: we found 1 record." in message


def test_the_answer_names_systems_and_counts_and_no_personal_data(
    officer, package_systems, django_capture_on_commit_callbacks
):
    RECORDS["crm"] = []
    req, package = request_packaged(officer, django_capture_on_commit_callbacks, language="nl")
    with django_capture_on_commit_callbacks(execute=True):
        package_staff.package_answer_send(request=req, actor=Actor.staff(officer))
    req.refresh_from_db()
    assert req.status == Status.COMPLETED
    email = OutboundEmail.objects.get(request=req, template="completed")
    assert "crm: we hebben niets over u gevonden." in email.body_text
    assert "shop: we hebben 4 gegevens gevonden." in email.body_text
    assert "downloaden vanaf de pagina van uw verzoek" in email.body_text  # the package is on the status page
    for personal in ("bench1@example.com", "Sam Sample", "item 0", "loyal", "held, not shown"):
        assert personal not in email.body_text and personal not in email.body_html


def test_memory_stays_flat_while_thousands_of_rows_are_packaged(
    officer, package_systems, django_capture_on_commit_callbacks, monkeypatch
):
    """A sanity check of the streaming (the benchmark measures 100,000 rows): packaging 40,000
    rows peaks far below the size of the data it writes (about 1.5 MB whether 5,000 or 40,000)."""
    rows = 40_000
    RECORDS["shop"] = [
        ("orders", {"id": n, "customer_id": 7, "ordered_at": "2026-11-01", "item": f"{n:06d}" + "x" * 120})
        for n in range(rows)
    ]
    monkeypatch.setitem(runs._queue, "package", lambda pk, countdown=0: None)
    monkeypatch.setattr(packages, "HTML_ROWS", 50)
    req = verified_request(officer=officer, regime="gdpr")
    with django_capture_on_commit_callbacks(execute=True):
        request_approve(request=req, actor=Actor.staff(officer))
    run = FulfilmentRun.objects.get(request=req)
    RECORDS.clear()
    tracemalloc.start()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            package = packages.package_build(run_id=run.pk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    archive = zip_of(package, officer)
    data_size = len(archive.read("data/shop/orders.json"))
    assert len(_records(archive, "data/shop/orders.json")) == rows and data_size > 7_000_000
    assert peak < data_size / 4, (peak, data_size)


@pytest.mark.parametrize("close", ["cancel", "deny"])
def test_held_copies_and_an_undelivered_package_are_purged_when_the_request_ends_unanswered(
    officer, package_systems, django_capture_on_commit_callbacks, close
):
    req, package = request_packaged(officer, django_capture_on_commit_callbacks)
    path = held_path(package.file_name)
    with django_capture_on_commit_callbacks(execute=True):
        if close == "cancel":
            request_cancel(request=req, actor=Actor.staff(officer), reason="withdrawn by phone")
        else:
            request_deny(request=req, actor=Actor.staff(officer), reason_category="other", message="Not ours.")
    package.refresh_from_db()
    assert package.purged_at and package.purge_reason == ("cancelled" if close == "cancel" else "denied")
    assert package.file_name == "" and not path.exists()
    purged = _events(req, EventType.PACKAGE_PURGED)
    assert len(purged) == 1 and purged[0].data["reason"] == package.purge_reason
    with pytest.raises(TransitionNotAllowed):
        packages.package_stream(package=package, actor=Actor.staff(officer), by="staff")


def test_a_search_cut_short_by_cancellation_is_stopped_and_its_held_results_deleted(
    officer, package_systems, django_capture_on_commit_callbacks
):
    RECORDS["processor"] = "pending"
    req, package = request_packaged(officer, django_capture_on_commit_callbacks)
    held = list(
        SystemRun.objects.filter(run__request=req).exclude(result_name="").values_list("result_name", flat=True)
    )
    assert package is None and len(held) == 2 and all(held_path(n).exists() for n in held)
    with django_capture_on_commit_callbacks(execute=True):
        request_cancel(request=req, actor=Actor.staff(officer), reason="withdrawn")
    assert not any(held_path(n).exists() for n in held)
    assert FulfilmentRun.objects.get(request=req).state == RunState.CANCELLED
    assert packages.package_build(run_id=FulfilmentRun.objects.get(request=req).pk) is None
    assert not AccessPackage.objects.exists()


def test_a_completed_request_keeps_its_package_until_it_expires_then_it_is_deleted_after_the_reissue_window(
    officer, package_systems, django_capture_on_commit_callbacks
):
    req, package = request_packaged(officer, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        package_staff.package_answer_send(request=req, actor=Actor.staff(officer))
    package.refresh_from_db()
    assert package.purged_at is None and held_path(package.file_name).exists()
    # Access ended, the re-issue window still open: nothing deleted.
    AccessPackage.objects.filter(pk=package.pk).update(expires_at=timezone.now() - timedelta(days=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert packages.packages_expire() == 0
    path = held_path(package.file_name)
    AccessPackage.objects.filter(pk=package.pk).update(
        expires_at=timezone.now() - timedelta(days=settings.DSR_PACKAGE_REISSUE_DAYS, minutes=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert packages.packages_expire() == 1
        assert packages.packages_expire() == 0
    package.refresh_from_db()
    assert package.purge_reason == "expired" and package.purged_at and not path.exists()
    req.refresh_from_db()
    assert [e.data["reason"] for e in _events(req, EventType.PACKAGE_PURGED)] == ["expired"]
    with pytest.raises(TransitionNotAllowed, match="deleted"):
        package_staff.package_reissue(request=req, actor=Actor.staff(officer))


def test_reissue_gives_a_new_expiry_resets_downloads_and_tells_the_requester_without_searching_again(
    officer, package_systems, django_capture_on_commit_callbacks
):
    req, package = request_packaged(officer, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        package_staff.package_answer_send(request=req, actor=Actor.staff(officer))
    AccessPackage.objects.filter(pk=package.pk).update(expires_at=timezone.now() - timedelta(days=2), downloads=5)
    searches = FulfilmentRun.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        package_staff.package_reissue(request=req, actor=Actor.staff(officer))
    package.refresh_from_db()
    assert package.downloads == 0 and package.expires_at > timezone.now() + timedelta(
        days=settings.DSR_PACKAGE_DAYS - 1
    )
    assert FulfilmentRun.objects.count() == searches
    req.refresh_from_db()
    reissued = _events(req, EventType.PACKAGE_REISSUED)
    assert len(reissued) == 1 and reissued[0].actor == officer
    email = OutboundEmail.objects.get(request=req, template="package_reissued")
    assert req.reference in email.subject and "bench1" not in email.body_text


def test_what_a_processor_sends_after_the_request_closed_is_deleted_by_the_sweep(
    officer, package_systems, django_capture_on_commit_callbacks
):
    RECORDS["processor"] = "pending"
    req, _ = request_packaged(officer, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        package_staff.package_build_now(request=req, actor=Actor.staff(officer))
        package_staff.package_answer_send(request=req, actor=Actor.staff(officer))
    processor = SystemRun.objects.get(run__request=req, system="processor")
    with django_capture_on_commit_callbacks(execute=True):
        runs.system_run_records_receive(system_run=processor, records=[("payments", {"id": 9, "email": "x@y.example"})])
    processor.refresh_from_db()
    late = held_path(processor.result_name)
    assert late.exists()
    with django_capture_on_commit_callbacks(execute=True):
        packages.packages_expire()
    processor.refresh_from_db()
    assert processor.result_name == "" and not late.exists()
    assert AccessPackage.objects.get(request=req).purged_at is None  # the delivered package stays


def test_a_map_that_no_longer_loads_still_packages_everything_found(
    officer, package_systems, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setitem(runs._queue, "package", lambda pk, countdown=0: None)
    req, _ = request_packaged(officer, django_capture_on_commit_callbacks)
    package_systems.write_text("systems: [not a map")
    with django_capture_on_commit_callbacks(execute=True):
        package = packages.package_build(run_id=FulfilmentRun.objects.get(request=req).pk)
    archive = zip_of(package, officer)
    assert len(_records(archive, "data/shop/orders.json")) == 3
    assert _records(archive, "data/shop/customer.json")[0]["ssn"] == "held, not shown"


def test_the_requesters_download_days_count_from_the_answer_not_from_the_build(
    officer, package_systems, django_capture_on_commit_callbacks
):
    req, package = request_packaged(officer, django_capture_on_commit_callbacks)
    built_long_ago = timezone.now() - timedelta(days=settings.DSR_PACKAGE_DAYS - 2)
    AccessPackage.objects.filter(pk=package.pk).update(
        expires_at=built_long_ago + timedelta(days=settings.DSR_PACKAGE_DAYS)
    )
    with django_capture_on_commit_callbacks(execute=True):
        package_staff.package_answer_send(request=req, actor=Actor.staff(officer))
    package.refresh_from_db()
    left = package.expires_at - timezone.now()
    assert (
        timedelta(days=settings.DSR_PACKAGE_DAYS) - timedelta(minutes=1)
        < left
        <= timedelta(days=settings.DSR_PACKAGE_DAYS)
    )


def test_a_package_build_lost_with_the_broker_is_built_again_by_the_sweep(
    officer, package_systems, django_capture_on_commit_callbacks, monkeypatch
):
    from dsr.fulfilment.services import sweep

    lost: list[int] = []
    broker = runs._queue["package"]
    monkeypatch.setitem(runs._queue, "package", lambda pk, countdown=0: lost.append(pk))
    req, package = request_packaged(officer, django_capture_on_commit_callbacks)
    run = FulfilmentRun.objects.get(request=req)
    assert package is None and lost == [run.pk] and run.state == RunState.DONE
    monkeypatch.setitem(runs._queue, "package", broker)  # the broker is back (eager tasks here)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.packages_stalled_requeue() == 0  # too recent: the build may still be on its way
    FulfilmentRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.packages_stalled_requeue() == 1
    assert AccessPackage.objects.filter(run=run).count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.packages_stalled_requeue() == 0


@pytest.mark.django_db(transaction=True)
def test_the_last_system_to_answer_builds_the_package_in_its_own_task_not_through_the_broker(
    officer, package_systems, django_capture_on_commit_callbacks, monkeypatch
):
    """Committed for real (as in a worker), so the search's after-commit work runs inside the
    system's task."""
    from dsr.fulfilment import tasks

    queued: list[tuple] = []
    monkeypatch.setattr(tasks.fulfilment_package_build, "apply_async", lambda *a, **k: queued.append(a))
    req, package = request_packaged(officer, django_capture_on_commit_callbacks)
    assert package is not None and queued == []
    # Outside a system's task (a processor's callback finished the search in a web process), the
    # build goes through the broker.
    tasks._package_queue(package.run_id)
    assert queued == [((package.run_id,),)]
