"""Files from requesters: checked by content (not by the name or the browser's word), stored
privately, and — for identity documents — deleted once the decision is recorded, so that only
"ID checked" remains (EDPB ¶73-79, RULES.md §3 [policy])."""

import hashlib
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from dsr.errors import InvalidInput
from dsr.models import DataSubjectRequest, RequestDocument
from dsr.services.audit import Actor, audit_event_record
from dsr.services.events import event_document_received, event_identity_document_deleted
from dsr.validators import single_line_problem

# What the first bytes of an accepted file must be.
SIGNATURES = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}
EXTENSIONS = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}
ORIGINAL_NAME_MAX = 120


def original_name_clean(name: str) -> str:
    """The name the sender gave, kept for staff to read and for nothing else (never a file name
    or a content type): no folders, no control or bidi characters, not too long."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if not single_line_problem(ch)).strip()
    return name[:ORIGINAL_NAME_MAX]


def document_download_name(document: RequestDocument) -> str:
    """What staff download: DSR-2026-000042-evidence-7.pdf, the extension of the checked type."""
    kind = document.kind.replace("_", "-")
    return f"{document.request.reference}-{kind}-{document.pk}.{EXTENSIONS.get(document.content_type, 'bin')}"


def document_content_type(document: RequestDocument) -> str:
    """Only a type the content check gave is ever sent back."""
    return document.content_type if document.content_type in EXTENSIONS else "application/octet-stream"


@dataclass(frozen=True)
class CheckedDocument:
    content: bytes
    original_name: str
    content_type: str
    sha256: str


def document_check(upload, *, field: str = "documents") -> CheckedDocument:
    if upload.size > settings.DSR_UPLOAD_MAX_BYTES:
        limit = settings.DSR_UPLOAD_MAX_BYTES // (1024 * 1024)
        raise InvalidInput(gettext("The file is too large; the limit is %(limit)d MB.") % {"limit": limit}, field=field)
    content = upload.read()
    if not content:
        raise InvalidInput(gettext("The file is empty."), field=field)
    for content_type, magic in SIGNATURES.items():
        if any(content.startswith(m) for m in magic):
            name = original_name_clean(getattr(upload, "name", ""))
            return CheckedDocument(content, name, content_type, hashlib.sha256(content).hexdigest())
    raise InvalidInput(gettext("Send a PDF, PNG or JPEG file."), field=field)


def document_store(*, request: DataSubjectRequest, kind: str, checked: CheckedDocument, actor: Actor | None = None):
    document = RequestDocument(
        request=request,
        kind=kind,
        original_name=checked.original_name,
        content_type=checked.content_type,
        size=len(checked.content),
        sha256=checked.sha256,
        uploaded_at=timezone.now(),
    )
    now = timezone.now()
    document.file.name = f"requests/{now:%Y/%m}/{secrets.token_hex(16)}.{EXTENSIONS[checked.content_type]}"
    document.save(force_insert=True)
    storage = RequestDocument._meta.get_field("file").storage
    # Written after commit: a rolled-back submission leaves no file behind.
    transaction.on_commit(lambda: storage.save(document.file.name, ContentFile(checked.content)))
    audit_event_record(
        request=request,
        event=event_document_received(
            actor=actor or Actor.requester(request.email),
            kind=kind,
            size=document.size,
            sha256=document.sha256,
            content_type=checked.content_type,
        ),
    )
    return document


def identity_documents_purge(*, request: DataSubjectRequest) -> int:
    """The decision is recorded: delete identity documents, keep the fact that one was checked."""
    documents = list(request.documents.filter(kind=RequestDocument.Kind.IDENTITY, deleted_at__isnull=True))
    if not documents:
        return 0
    now = timezone.now()
    names = [d.file.name for d in documents]
    RequestDocument.objects.filter(pk__in=[d.pk for d in documents]).update(deleted_at=now, file="")
    audit_event_record(
        request=request,
        event=event_identity_document_deleted(
            count=len(documents),
            sha256=[d.sha256 for d in documents],
        ),
    )
    storage = RequestDocument._meta.get_field("file").storage
    transaction.on_commit(lambda: stored_files_delete(storage, names))
    return len(documents)


def stored_files_delete(storage, names) -> None:
    """After commit: remove stored files (a blank name is a file already gone)."""
    for name in names:
        if name:
            storage.delete(name)
