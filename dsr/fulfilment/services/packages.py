"""The access package: what a search found, built into one ZIP for the requester — `index.html` (a
readable, printable report in the request's language), `data/<system>/<collection>.json` and
`.csv` (Art 20: structured, commonly used, machine-readable) and `manifest.json` (every file's
SHA-256 and record count, every system searched, what is held but withheld and why) — or, for a
request for categories only, the categories report without records.

The ZIP is written streaming, straight into an EncryptedWriter under private storage: each
system's held result is read back one collection at a time, so memory stays flat whatever the
number of rows. Once the package is stored the run's per-system copies are deleted.

Afterwards: staff download it (each download an audit event); the requester downloads it from
their status page once the request is completed, after a fresh emailed code, a limited number of
times, until it expires. The encrypted file is kept DSR_PACKAGE_REISSUE_DAYS longer so staff can
re-issue it without searching again, then deleted. Every end state but completion deletes what
is held at once (the `request_closed` hook)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import secrets
import zipfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext, ngettext

from dsr.csv_export import csv_writer
from dsr.errors import TransitionNotAllowed
from dsr.fulfilment.categories import category_label
from dsr.fulfilment.crypto import EncryptedWriter, decrypted_chunks, token_digest, token_new
from dsr.fulfilment.datamap import DataMap, DataMapError, System, datamap_load
from dsr.fulfilment.models import (
    AccessPackage,
    DownloadCode,
    ErasureLedgerEntry,
    FulfilmentRun,
    PackageKind,
    RunState,
    SystemRun,
    SystemStatus,
)
from dsr.fulfilment.records import HELD_NOT_SHOWN
from dsr.fulfilment.results import held_delete, held_path
from dsr.fulfilment.services import runs
from dsr.models import DataSubjectRequest, Status
from dsr.services.audit import Actor, audit_event_record
from dsr.services.emails import email_to_requester
from dsr.services.events import (
    event_package_built,
    event_package_code_sent,
    event_package_downloaded,
    event_package_purged,
    event_package_reissued,
)
from dsr.services.transitions import request_locked

log = logging.getLogger(__name__)

PACKAGES = b"packages"  # the encryption purpose: packages and held results never share a key
# index.html shows at most this many rows per collection; all of them are in the data files.
HTML_ROWS = 1000
CODE_DIGITS = 6
BY_STAFF = "staff"
BY_REQUESTER = "requester"

# A system's state as the package and the answer tell it.
FOUND = "found"
NOTHING_FOUND = "nothing_found"
REQUESTED = "requested"
FAILED = "failed"
SKIPPED = "skipped"


# --- Building -------------------------------------------------------------------------------------


class _Counted:
    """The ZIP's bytes on their way into the encryption: hashed and counted (the package's SHA-256
    and size are of the ZIP itself, so a requester can check the file they downloaded)."""

    def __init__(self, writer: EncryptedWriter):
        self.writer = writer
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self.writer.write(data)
        return len(data)

    def tell(self) -> int:  # no seek(): zipfile then writes each member's sizes after its data
        return self.size

    def flush(self) -> None:
        pass


class _Member:
    """One file of the ZIP, written in pieces; its SHA-256 and size go in the manifest."""

    def __init__(self, archive: zipfile.ZipFile, name: str):
        self.name = name
        self.handle = archive.open(name, "w", force_zip64=True)
        self.buffer = bytearray()
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        # Gathered into 64 KiB pieces: compressing record by record costs more than the records.
        self.buffer += data
        if len(self.buffer) >= 64 * 1024:
            self._flush()

    def _flush(self) -> None:
        self.sha256.update(self.buffer)
        self.size += len(self.buffer)
        self.handle.write(self.buffer)
        self.buffer.clear()

    def close(self, records: int | None = None) -> dict[str, Any]:
        self._flush()
        self.handle.close()
        return {"name": self.name, "sha256": self.sha256.hexdigest(), "bytes": self.size, "records": records}


def _collection_records(result_name: str, collection: str) -> Generator[dict[str, Any], None, None]:
    """The records of one collection of a held result, streaming. Each line was written as
    {"c": collection, "r": record}, so a line of another collection is skipped without parsing."""
    prefix = json.dumps({"c": collection}, ensure_ascii=False)[:-1].encode() + b", "
    with open(held_path(result_name), "rb") as raw:
        pending = b""
        for chunk in decrypted_chunks(raw, purpose=b"results"):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.startswith(prefix):
                    yield json.loads(line.decode())["r"]
        if pending.startswith(prefix):
            yield json.loads(pending.decode())["r"]


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _csv_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _system_state(system_run: SystemRun) -> str:
    if system_run.status == SystemStatus.DONE:
        return FOUND if system_run.records else NOTHING_FOUND
    if system_run.status == SystemStatus.FAILED:
        return FAILED
    if system_run.status == SystemStatus.SKIPPED:
        return SKIPPED
    return REQUESTED  # asked and not answered yet (a processor, an owner), or still being searched


def _asked_on(system_run: SystemRun) -> datetime | None:
    return system_run.requested_at or system_run.started_at or system_run.run.started_at


def _held_categories(system_run: SystemRun, system: System) -> list[str]:
    """The categories of the collections where this person's records were found."""
    found = [c for c in system.collections if system_run.counts.get(c.name)]
    return sorted({slug for c in found for slug in c.categories}) or list(system.categories)


def categories_answer(run: FulfilmentRun, datamap: DataMap | None) -> dict[str, Any]:
    """§1798.110(a)(1)-(4), Art 15(1)(a)-(h): the categories of personal information held about
    this person, their sources, purposes, recipients and retention — from the map, for the systems
    that actually held data for them (never typed by hand). Per system, the categories are those of
    the collections where their records were found."""
    held: list[dict[str, Any]] = []
    for system_run in SystemRun.objects.filter(run=run).order_by("id"):
        system = datamap.system(system_run.system) if datamap else None
        if system is None or system_run.status != SystemStatus.DONE or not system_run.records:
            continue
        held.append({"system": system, "categories": _held_categories(system_run, system)})
    slugs = sorted({slug for item in held for slug in item["categories"]})
    recipients: dict[tuple[str, str], Any] = {}
    for item in held:
        for r in item["system"].recipients:
            recipients.setdefault((r.category, r.name), r)
    return {
        "systems": [item["system"].name for item in held],
        "categories": [{"slug": s, "label": category_label(s)} for s in slugs],
        "sources": sorted({s for item in held for s in item["system"].sources}),
        "purposes": sorted({p for item in held for p in item["system"].purposes}),
        "recipients": [recipients[key] for key in sorted(recipients)],
        "sold": any(item["system"].sold for item in held),
        "shared": any(item["system"].shared for item in held),
    }


@dataclass
class _SystemPart:
    system_run: SystemRun
    spec: System | None
    state: str
    collections: list[dict[str, Any]]


def _system_parts(run: FulfilmentRun, datamap: DataMap | None) -> list[_SystemPart]:
    parts = []
    for system_run in SystemRun.objects.filter(run=run).select_related("run").order_by("id"):
        spec = datamap.system(system_run.system) if datamap else None
        state = _system_state(system_run)
        collections = []
        if state == FOUND:
            # Every collection the map names, then any the search counted that the map no longer
            # does (it changed since): what was found is never dropped from the package.
            names = [c.name for c in spec.collections] if spec else []
            names += [name for name in system_run.counts if name not in names]
            for name in names:
                collections.append(
                    {
                        "name": name,
                        "spec": next((c for c in spec.collections if c.name == name), None) if spec else None,
                        "records": system_run.counts.get(name, 0),
                        "json": f"data/{system_run.system}/{name}.json",
                        "csv": f"data/{system_run.system}/{name}.csv",
                    }
                )
        parts.append(_SystemPart(system_run, spec, state, collections))
    return parts


def _html_table(result_name: str, collection: dict[str, Any]) -> dict[str, Any]:
    """The first HTML_ROWS rows of a collection as table cells: (text, withheld category or "")."""
    spec = collection["spec"]
    columns: list[str] = []
    rows: list[list[tuple[str, str]]] = []
    if not collection["records"]:
        return {"columns": columns, "rows": rows, "more": 0}
    records = _collection_records(result_name, collection["name"])
    try:
        for record in records:
            for key in record:
                if key not in columns:
                    columns.append(key)
            rows.append(
                [
                    (gettext("held, not shown"), category_label(field.category))
                    if (value := record.get(key)) == HELD_NOT_SHOWN and spec and (field := spec.field(key)) is not None
                    else (_cell_text(value), "")
                    for key in columns
                ]
            )
            if len(rows) >= HTML_ROWS:
                break
    finally:
        records.close()
    # A record without a column seen later gets an empty cell in the table.
    width = len(columns)
    for row in rows:
        row.extend([("", "")] * (width - len(row)))
    return {"columns": columns, "rows": rows, "more": max(0, collection["records"] - len(rows))}


def _data_files(archive: zipfile.ZipFile, part: _SystemPart) -> list[dict[str, Any]]:
    """data/<system>/<collection>.json and .csv, one pass over the held result for each."""
    written = []
    result_name = part.system_run.result_name
    for collection in part.collections:
        columns: dict[str, None] = {}
        member = _Member(archive, collection["json"])
        member.write(b"[")
        count = 0
        if collection["records"] and result_name:
            for record in _collection_records(result_name, collection["name"]):
                columns.update(dict.fromkeys(record))
                member.write((b",\n" if count else b"\n") + json.dumps(record, ensure_ascii=False).encode())
                count += 1
        member.write(b"\n]\n" if count else b"]\n")
        written.append(member.close(records=count))

        header = list(columns) or ([f.name for f in collection["spec"].fields] if collection["spec"] else [])
        member = _Member(archive, collection["csv"])
        buffer = io.StringIO()
        writer = csv_writer(buffer)
        writer.writerow(header)
        count = 0
        if collection["records"] and result_name:
            for record in _collection_records(result_name, collection["name"]):
                writer.writerow([_csv_value(record.get(key)) for key in header])
                count += 1
                if buffer.tell() > 64 * 1024:
                    member.write(buffer.getvalue().encode())
                    buffer.seek(0)
                    buffer.truncate()
        member.write(buffer.getvalue().encode())
        written.append(member.close(records=count))
    return written


def _system_context(part: _SystemPart, *, with_records: bool) -> dict[str, Any]:
    system_run, spec = part.system_run, part.spec
    asked = _asked_on(system_run)
    return {
        "name": system_run.system,
        "state": part.state,
        "records": system_run.records,
        "asked_on": asked,
        "description": spec.description if spec else "",
        # What the system holds about this person where it held something, else what it holds at all.
        "categories": [
            category_label(c) for c in (_held_categories(system_run, spec) if part.state == FOUND else spec.categories)
        ]
        if spec
        else [],
        "sources": list(spec.sources) if spec else [],
        "purposes": list(spec.purposes) if spec else [],
        "recipients": list(spec.recipients) if spec else [],
        "retention": spec.retention if spec else "",
        "withheld": system_run.withheld,
        "collections": [
            {
                **{k: v for k, v in collection.items() if k != "spec"},
                **(_html_table(system_run.result_name, collection) if with_records and system_run.result_name else {}),
            }
            for collection in part.collections
        ],
    }


def _manifest(
    run: FulfilmentRun, request: DataSubjectRequest, parts, files, generated_at, datamap: DataMap | None
) -> dict[str, Any]:
    manifest = {
        "reference": request.reference,
        "request_type": request.request_type,
        "regime": request.regime,
        "kind": run.package_kind,
        "language": request.language,
        "generated_at": generated_at.isoformat(),
        "datamap_version": run.datamap_version,
        "since": run.since.isoformat() if run.since else None,
        "files": files,
        "systems": [
            {
                "system": p.system_run.system,
                "kind": p.system_run.kind,
                "status": p.state,
                "records": p.system_run.records if p.state == FOUND else 0,
                "counts": p.system_run.counts if p.state == FOUND else {},
                "requested_at": _asked_on(p.system_run).isoformat()  # type: ignore[union-attr]
                if p.state == REQUESTED
                else None,
            }
            for p in parts
        ],
        "withheld": [{"system": p.system_run.system, **item} for p in parts for item in p.system_run.withheld],
    }
    if datamap is not None and datamap.version != run.datamap_version:
        # The map changed after the search: the systems are described as the current map has them.
        manifest["datamap_version_described"] = datamap.version
    return manifest


def _zip_write(raw: BinaryIO, *, run: FulfilmentRun, request: DataSubjectRequest) -> tuple[int, str, int]:
    """Write the ZIP, encrypted, into `raw`; (files, sha256 of the ZIP, its size)."""
    try:
        datamap: DataMap | None = datamap_load()
    except DataMapError:
        datamap = None  # the package still says what was searched and found, without the map's words
    parts = _system_parts(run, datamap)
    with_records = run.package_kind != PackageKind.CATEGORIES
    generated_at = timezone.now()
    writer = EncryptedWriter(raw, purpose=PACKAGES)
    counted = _Counted(writer)
    files: list[dict[str, Any]] = []
    with zipfile.ZipFile(counted, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[call-overload]
        with translation.override(request.language):
            html = render_to_string(
                # Not a page of the site (it is opened from the ZIP, offline, so its style is inline):
                # named apart from the page templates, which the CSP forbids inline style in.
                "fulfilment/package/report.html.txt",
                {
                    "req": request,
                    "run": run,
                    "kind": run.package_kind,
                    "with_records": with_records,
                    "generated_at": generated_at,
                    "systems": [_system_context(p, with_records=with_records) for p in parts],
                    "answer": categories_answer(run, datamap),
                    "html_rows": HTML_ROWS,
                    "business_name": settings.DSR_BUSINESS_NAME,
                    "business_contact": settings.DSR_BUSINESS_CONTACT,
                },
            )
        member = _Member(archive, "index.html")
        member.write(html.encode())
        files.append(member.close())
        del html
        if with_records:
            for part in parts:
                files.extend(_data_files(archive, part))
        manifest = _manifest(run, request, parts, files, generated_at, datamap)
        archive.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    writer.close()
    return len(files) + 1, counted.sha256.hexdigest(), counted.size


def package_build(*, run_id: int) -> AccessPackage | None:
    """Build and store the run's package, or return the one already built (a redelivered task
    builds nothing twice). None when the request ended without being answered (nothing to give)."""
    run = FulfilmentRun.objects.select_related("request").get(pk=run_id)
    existing = AccessPackage.objects.filter(run=run).first()
    if existing is not None:
        return existing
    request = run.request
    if run.state == RunState.CANCELLED or (not request.is_open and request.status != Status.COMPLETED):
        return None
    name = f"packages/{run.pk}-{token_new()}.zip.enc"
    path = held_path(name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        with open(path, "xb") as raw:
            os.chmod(path, 0o600)
            files, sha256, size = _zip_write(raw, run=run, request=request)
    except BaseException:
        held_delete(name)
        raise
    try:
        package = _package_record(run=run, name=name, files=files, sha256=sha256, size=size)
    except IntegrityError:  # built at the same time by another delivery: keep theirs
        held_delete(name)
        return AccessPackage.objects.get(run=run)
    if package is None:
        held_delete(name)
        return None
    # The per-system copies are deleted once the package holding them is committed.
    transaction.on_commit(lambda: runs.run_held_purge(run=run))
    return package


@transaction.atomic
def _package_record(*, run: FulfilmentRun, name: str, files: int, sha256: str, size: int) -> AccessPackage | None:
    request = request_locked(run.request_id)
    if not request.is_open and request.status != Status.COMPLETED:
        return None  # closed while the package was being written: the closing hook purged the rest
    now = timezone.now()
    with transaction.atomic():
        package = AccessPackage.objects.create(
            run=run,
            request=request,
            kind=run.package_kind,
            language=request.language,
            file_name=name,
            files=files,
            bytes=size,
            sha256=sha256,
            created_at=now,
            expires_at=now + timedelta(days=settings.DSR_PACKAGE_DAYS),
            max_downloads=settings.DSR_PACKAGE_MAX_DOWNLOADS,
        )
    audit_event_record(
        request=request,
        event=event_package_built(
            run_id=run.pk, kind=package.kind, files=files, size=size, sha256=sha256, expires_at=package.expires_at
        ),
    )
    return package


# --- Downloads ------------------------------------------------------------------------------------


class _Decrypted:
    """The decrypted ZIP, chunk by chunk; the file is closed when the response is (or on the end)."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.chunks = decrypted_chunks(raw, purpose=PACKAGES)

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.chunks
        finally:
            self.close()

    def close(self) -> None:
        self.raw.close()


def package_gone_message(package: AccessPackage) -> str:
    return (
        f"The package of {package.request.reference} was deleted on {package.purged_at:%Y-%m-%d} "
        f"({package.purge_reason})."
    )


def package_requester_refusal(package: AccessPackage, request: DataSubjectRequest) -> str:
    """Why the requester may not download now, in their words, or "" when they may."""
    if request.status != Status.COMPLETED:
        return gettext("Your data can be downloaded once we have sent our answer.")
    if package.purged_at is not None or not package.file_name:
        return gettext("The copy of your data has been deleted.")
    if package.expires_at <= timezone.now():
        return gettext("The download of your data has expired.")
    if package.downloads >= package.max_downloads:
        return gettext("You have downloaded your data the maximum number of times.")
    return ""


def package_stream(*, package: AccessPackage, actor: Actor, by: str) -> Iterator[bytes]:
    """The decrypted ZIP as an iterator of bytes; the download is an audit event, and a
    requester's is counted against max_downloads (refused — TransitionNotAllowed — beyond it,
    once expired, or before the answer was sent). Staff may download until the file is deleted."""
    with transaction.atomic():
        request = request_locked(package.request_id)
        locked = AccessPackage.objects.select_for_update().get(pk=package.pk)
        if locked.purged_at is not None or not locked.file_name:
            locked.request = request
            raise TransitionNotAllowed(package_gone_message(locked))
        if by == BY_REQUESTER:
            refusal = package_requester_refusal(locked, request)
            if refusal:
                raise TransitionNotAllowed(refusal)
            locked.downloads += 1
            locked.save(update_fields=["downloads"])
        try:
            raw = open(held_path(locked.file_name), "rb")  # noqa: SIM115 - closed by _Decrypted
        except FileNotFoundError:
            raise TransitionNotAllowed(f"The package file of {request.reference} is missing.") from None
        audit_event_record(
            request=request,
            event=event_package_downloaded(actor=actor, package_id=locked.pk, by=by, downloads=locked.downloads),
        )
    package.downloads = locked.downloads
    return iter(_Decrypted(raw))


def package_for_request(request: DataSubjectRequest) -> AccessPackage | None:
    """The package of the request's latest search, if one was built."""
    run = FulfilmentRun.objects.filter(request=request).order_by("-started_at", "-pk").first()
    return AccessPackage.objects.filter(run=run).first() if run else None


def _code_digest(package_id: int, code: str) -> str:
    return token_digest(f"package-code:{package_id}:{code}")


@transaction.atomic
def package_code_send(*, request: DataSubjectRequest) -> DownloadCode:
    """A fresh download code by email (the package is the most sensitive thing the product holds,
    so a status link alone never opens it). Earlier codes stop working. Raises TransitionNotAllowed
    when the requester may not download now."""
    locked = request_locked(request.pk)
    package = package_for_request(locked)
    if package is None:
        raise TransitionNotAllowed(gettext("There is no copy of your data to download."))
    package = AccessPackage.objects.select_for_update().get(pk=package.pk)
    refusal = package_requester_refusal(package, locked)
    if refusal:
        raise TransitionNotAllowed(refusal)
    now = timezone.now()
    DownloadCode.objects.filter(package=package, confirmed_at__isnull=True, expires_at__gt=now).update(expires_at=now)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    issued = DownloadCode.objects.create(
        package=package,
        code_digest=_code_digest(package.pk, code),
        created_at=now,
        expires_at=now + timedelta(minutes=settings.DSR_PACKAGE_CODE_MINUTES),
    )
    email_to_requester(
        request=locked,
        template="package_code",
        # `verify_code`: a code the product made, as the email-confirmation code (never typed text).
        context={"verify_code": code, "minutes": settings.DSR_PACKAGE_CODE_MINUTES},
    )
    audit_event_record(request=locked, event=event_package_code_sent(package_id=package.pk))
    return issued


@dataclass(frozen=True)
class CodeOutcome:
    ok: bool
    message: str = ""
    grant: str = ""  # the session's download grant (only its keyed hash is stored)


def package_code_pending(package: AccessPackage) -> DownloadCode | None:
    """The code last sent, while it can still be typed."""
    code = DownloadCode.objects.filter(package=package, confirmed_at__isnull=True).order_by("-created_at").first()
    if code is None or code.expires_at <= timezone.now() or code.attempts >= settings.DSR_PACKAGE_CODE_ATTEMPTS:
        return None
    return code


@transaction.atomic
def package_code_confirm(*, request: DataSubjectRequest, code: str) -> CodeOutcome:
    """The code typed on the status page. Every wrong try counts and is kept; after
    DSR_PACKAGE_CODE_ATTEMPTS, or once it expired, a new code must be sent. The right code opens a
    grant for DSR_PACKAGE_GRANT_MINUTES, bound to the session that typed it."""
    locked = request_locked(request.pk)
    package = package_for_request(locked)
    if package is None:
        return CodeOutcome(False, gettext("There is no copy of your data to download."))
    refusal = package_requester_refusal(package, locked)
    if refusal:
        return CodeOutcome(False, refusal)
    now = timezone.now()
    issued = (
        DownloadCode.objects.select_for_update()
        .filter(package=package, confirmed_at__isnull=True)
        .order_by("-created_at")
        .first()
    )
    if issued is None or issued.expires_at <= now:
        return CodeOutcome(False, gettext("This code has expired. Ask for a new one below."))
    if issued.attempts >= settings.DSR_PACKAGE_CODE_ATTEMPTS:
        return CodeOutcome(False, gettext("Too many wrong codes. Ask for a new one below."))
    issued.attempts += 1
    typed = "".join(ch for ch in (code or "") if ch.isdigit())
    if not hmac.compare_digest(issued.code_digest, _code_digest(package.pk, typed)):
        issued.save(update_fields=["attempts"])
        left = settings.DSR_PACKAGE_CODE_ATTEMPTS - issued.attempts
        if left <= 0:
            return CodeOutcome(False, gettext("Too many wrong codes. Ask for a new one below."))
        return CodeOutcome(
            False,
            ngettext(
                "That code is not right. You can try %(left)d more time.",
                "That code is not right. You can try %(left)d more times.",
                left,
            )
            % {"left": left},
        )
    grant = token_new()
    issued.confirmed_at = now
    issued.grant_digest = token_digest(grant)
    issued.grant_until = now + timedelta(minutes=settings.DSR_PACKAGE_GRANT_MINUTES)
    issued.save(update_fields=["attempts", "confirmed_at", "grant_digest", "grant_until"])
    return CodeOutcome(True, grant=grant)


def package_grant_valid(*, package: AccessPackage, grant: str) -> DownloadCode | None:
    if not grant:
        return None
    return DownloadCode.objects.filter(
        package=package, grant_digest=token_digest(grant), grant_until__gt=timezone.now()
    ).first()


# --- Expiry, re-issue, purge ----------------------------------------------------------------------


@transaction.atomic
def package_reissue(*, request: DataSubjectRequest, actor: Actor) -> AccessPackage:
    """Open the stored package to the requester again (a new expiry, the downloads reset, earlier
    codes void) without searching again; the requester is emailed. Refused once the file was
    deleted: then only a new search makes a new package."""
    locked = request_locked(request.pk)
    package = package_for_request(locked)
    if package is None:
        raise TransitionNotAllowed(f"No access package has been built for {locked.reference}.")
    package = AccessPackage.objects.select_for_update().get(pk=package.pk)
    if package.purged_at is not None or not package.file_name:
        package.request = locked
        raise TransitionNotAllowed(package_gone_message(package) + " Start a new search to build a new one.")
    if not locked.is_open and locked.status != Status.COMPLETED:
        raise TransitionNotAllowed(f"{locked.reference} is {locked.get_status_display().lower()}.")
    now = timezone.now()
    package.expires_at = now + timedelta(days=settings.DSR_PACKAGE_DAYS)
    package.downloads = 0
    package.save(update_fields=["expires_at", "downloads"])
    DownloadCode.objects.filter(package=package).filter(expires_at__gt=now).update(expires_at=now)
    DownloadCode.objects.filter(package=package, grant_until__gt=now).update(grant_until=now)
    audit_event_record(
        request=locked, event=event_package_reissued(actor=actor, package_id=package.pk, expires_at=package.expires_at)
    )
    if locked.status == Status.COMPLETED:
        email_to_requester(request=locked, template="package_reissued", context={"expires_at": package.expires_at})
    return package


@transaction.atomic
def package_purge(*, package_id: int, reason: str) -> bool:
    """Delete the package's encrypted file (the row stays, as the record of what was given)."""
    package = AccessPackage.objects.get(pk=package_id)
    request = request_locked(package.request_id)
    package = AccessPackage.objects.select_for_update().get(pk=package_id)
    if package.purged_at is not None:
        return False
    name = package.file_name
    package.purged_at = timezone.now()
    package.purge_reason = reason[:40]
    package.file_name = ""
    package.save(update_fields=["purged_at", "purge_reason", "file_name"])
    DownloadCode.objects.filter(package=package).delete()
    audit_event_record(
        request=request, event=event_package_purged(package_id=package.pk, run_id=package.run_id, reason=reason)
    )
    transaction.on_commit(lambda: held_delete(name))
    return True


def packages_expire() -> int:
    """The sweep: the requester's access ended at expires_at; DSR_PACKAGE_REISSUE_DAYS later the
    file (kept so staff could re-issue it) is deleted. Returns the packages deleted. Also deletes
    what a system sent after its request closed (a processor's late callback)."""
    cutoff = timezone.now() - timedelta(days=settings.DSR_PACKAGE_REISSUE_DAYS)
    due = AccessPackage.objects.filter(purged_at__isnull=True, expires_at__lt=cutoff).values_list("pk", flat=True)
    expired = sum(1 for pk in list(due) if package_purge(package_id=pk, reason="expired"))
    late = (
        FulfilmentRun.objects.filter(request__closed_at__isnull=False, systems__result_name__gt="")
        .distinct()
        .order_by()
    )
    for run in late:
        runs.run_held_purge(run=run)
    return expired


def _answer_expiry():
    return timezone.now().replace(microsecond=0) + timedelta(days=settings.DSR_PACKAGE_DAYS)


def request_held_purge(request_id: int, status: str) -> None:
    """The `request_closed` hook: a closed request's search stops and its per-system copies are
    deleted; a request that ended unanswered (denied, cancelled, forwarded) loses its undelivered
    package too. A completed request keeps its package until it expires, DSR_PACKAGE_DAYS from the
    answer (the requester can download only from then on, however early it was built)."""
    FulfilmentRun.objects.filter(request_id=request_id, state=RunState.RUNNING).update(
        state=RunState.CANCELLED, finished_at=timezone.now()
    )
    for run in FulfilmentRun.objects.filter(request_id=request_id):
        runs.run_held_purge(run=run)
    if status == Status.COMPLETED:
        AccessPackage.objects.filter(
            request_id=request_id, purged_at__isnull=True, expires_at__lt=_answer_expiry()
        ).update(expires_at=_answer_expiry())
        return
    for package_id in AccessPackage.objects.filter(request_id=request_id, purged_at__isnull=True).values_list(
        "pk", flat=True
    ):
        package_purge(package_id=package_id, reason=str(status))


# --- The answer -----------------------------------------------------------------------------------


def answer_message(run: FulfilmentRun, language: str) -> str:
    """The completion message, in the request's language, built from the search: each system
    searched and what was found there in words, what is still asked of whom, and that the package
    is on the status page. It names systems and counts only — never a piece of personal data."""
    with translation.override(language):
        system_runs = list(SystemRun.objects.filter(run=run).select_related("run").order_by("id"))
        lines = [
            ngettext(
                "We searched %(count)d system for personal information about you:",
                "We searched %(count)d systems for personal information about you:",
                len(system_runs),
            )
            % {"count": len(system_runs)}
        ]
        for system_run in system_runs:
            state = _system_state(system_run)
            name = system_run.system
            if state == FOUND:
                line = ngettext(
                    "%(system)s: we found %(count)d record.",
                    "%(system)s: we found %(count)d records.",
                    system_run.records,
                ) % {"system": name, "count": system_run.records}
            elif state == NOTHING_FOUND:
                line = gettext("%(system)s: we found nothing about you.") % {"system": name}
            elif state == REQUESTED:
                asked = _asked_on(system_run)
                line = gettext(
                    "%(system)s: requested from %(system)s on %(date)s; we will send you what it holds when it answers."
                ) % {"system": name, "date": f"{asked:%Y-%m-%d}" if asked else ""}
            elif state == FAILED:
                line = gettext("%(system)s: could not be searched; we will tell you when it has been.") % {
                    "system": name
                }
            else:
                line = gettext("%(system)s: not searched for this request.") % {"system": name}
            lines.append(f"- {line}")
        withheld = sum(1 for sr in system_runs for item in sr.withheld if "§7024" in item.get("reason", ""))
        if withheld:
            lines.append(
                gettext(
                    "Some information we hold (such as identity or account numbers) is listed as held but not shown, "
                    "as the law requires for your protection."
                )
            )
        if run.package_kind == PackageKind.CATEGORIES:
            lines.append(
                gettext(
                    "The categories of personal information we hold about you, where they come from, why we use "
                    "them and who receives them are in a report you can download from your request page."
                )
            )
        else:
            lines.append(
                gettext(
                    "A copy of your data is ready to download from your request page. For your security we will "
                    "email you a code to type there before the download starts."
                )
            )
        return "\n".join(lines)


def request_rows_purge(request_id: int) -> None:
    """The `request_purging` hook, inside the retention purge's transaction: the request's runs
    (their systems and owners' tasks), packages and download codes, and its erasure ledger entry
    go with it — the record-keeping period that kept them has ended, and the ledger cannot replay
    an erasure without the request's own record. Files are deleted once the purge commits."""
    runs_of = FulfilmentRun.objects.filter(request_id=request_id)
    names = [n for n in AccessPackage.objects.filter(request_id=request_id).values_list("file_name", flat=True) if n]
    names += [n for n in SystemRun.objects.filter(run__in=runs_of).values_list("result_name", flat=True) if n]
    DownloadCode.objects.filter(package__request_id=request_id).delete()
    AccessPackage.objects.filter(request_id=request_id).delete()
    ErasureLedgerEntry.objects.filter(run__in=runs_of).delete()
    runs_of.delete()

    def files_delete() -> None:
        for name in names:
            held_delete(name)

    transaction.on_commit(files_delete)
