"""Fulfilment's tables: a run per request (the map version it used), a row per system searched
(its own state, so nothing is stuck without a reason shown and a retry re-runs only what failed),
the manual owners' tasks, the access package and its download codes, and each system's last health
check. Services write them; nothing here has behaviour."""

from django.db import models
from django.db.models import Q

from dsr.models import DataSubjectRequest


class RunState(models.TextChoices):
    RUNNING = "running", "Running"
    # An erasure's plan is ready: nothing changes until an officer (two, under four eyes) approves it.
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"  # at least one system failed; the others are done
    CANCELLED = "cancelled", "Cancelled"


class SystemStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    WAITING_MANUAL = "waiting_manual", "Waiting for the owner"
    SKIPPED = "skipped", "Skipped"
    PLANNED = "planned", "Planned"  # an erasure's plan is stored; it runs once approved
    # An instruction was sent; the system (an http callback) or its owner confirms later.
    WAITING = "waiting", "Waiting for confirmation"


class PackageKind(models.TextChoices):
    RECORDS = "records", "Copy of the data"
    PORTABLE = "portable", "Portable copy (data the person provided)"
    CATEGORIES = "categories", "Categories report"
    ERASURE = "erasure", "Erasure (no package)"
    # Runs that tell systems what to do (services/instructions.py), no package either.
    CORRECTION = "correction", "Correction"
    RESTRICTION = "restriction", "Restriction of processing"
    OPT_OUT = "opt_out", "Opt-out passed on"


class FulfilmentRun(models.Model):
    request = models.ForeignKey(DataSubjectRequest, on_delete=models.PROTECT, related_name="fulfilment_runs")
    datamap_version = models.CharField(max_length=64)
    datamap_path = models.CharField(max_length=500)
    package_kind = models.CharField(max_length=12, choices=PackageKind.choices)
    state = models.CharField(max_length=20, choices=RunState.choices, default=RunState.RUNNING)
    # The look-back (CCPA: the period the form recorded; GDPR: none).
    since = models.DateTimeField(null=True, blank=True)
    due_date = models.DateField()
    started_by = models.CharField(max_length=150)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # An erasure's approvals, in order: [{"by": label, "user": id, "at": iso}]; `approved_at` is set
    # when the last one needed is given (one officer, or two under DSR_ERASURE_FOUR_EYES).
    approvals = models.JSONField(default=list, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One run at a time per request: a second start while one runs is refused by the database.
            models.UniqueConstraint(
                fields=["request"],
                condition=Q(state__in=["running", "awaiting_approval"]),
                name="fulfilment_one_running_run_per_request",
            ),
        ]
        indexes = [models.Index(fields=["request", "-started_at"], name="fulfilment_run_request")]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.request_id} ({self.state})"


class SystemRun(models.Model):
    run = models.ForeignKey(FulfilmentRun, on_delete=models.CASCADE, related_name="systems")
    system = models.CharField(max_length=63)
    kind = models.CharField(max_length=12)
    status = models.CharField(max_length=16, choices=SystemStatus.choices, default=SystemStatus.PENDING)
    records = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)  # collection -> records kept for the package
    withheld = models.JSONField(default=list, blank=True)  # [{collection, field, category, reason}]
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The result file (encrypted JSON lines, one per record) under private storage, until packaged.
    result_name = models.CharField(max_length=255, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)  # an asynchronous system was asked
    callback_digest = models.CharField(max_length=64, blank=True)  # keyed hash of the callback token
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A redelivered task that finds its lease still held by a live attempt does nothing.
    lease_until = models.DateTimeField(null=True, blank=True)
    # Erasure: the system's plan (the ErasurePlan as JSON: rows, problems, counts) and its digest,
    # what the database reported erased, and what the verification pass found left.
    plan = models.JSONField(default=dict, blank=True)
    plan_digest = models.CharField(max_length=64, blank=True)
    erased = models.JSONField(default=dict, blank=True)
    verification = models.JSONField(default=dict, blank=True)
    # An instruction told to the system (services/instructions.py): the Instruction as JSON
    # ({"action", "items", "note"}), the system's last answer ({"confirmed", "pending", "counts",
    # "by", "at"}) and when it confirmed. Empty for a search or an erasure by plan.
    instruction = models.JSONField(default=dict, blank=True)
    instructed = models.JSONField(default=dict, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "system"], name="fulfilment_system_once_per_run")]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.system} in run {self.run_id} ({self.status})"


class ManualTask(models.Model):
    """A system nobody can query: its owner answers through a private link (no staff account)."""

    system_run = models.OneToOneField(SystemRun, on_delete=models.CASCADE, related_name="manual_task")
    owner_email = models.EmailField(max_length=254)
    token_digest = models.CharField(max_length=64, unique=True)
    # The link's token is recomputed from this seed and the secret key, so every reminder carries
    # the same link; a copy of the database alone opens nothing (services/manual_tasks.py).
    token_seed = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()
    reminded_at = models.DateTimeField(null=True, blank=True)
    remind_on = models.DateField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    nothing_held = models.BooleanField(default=False)
    upload_name = models.CharField(max_length=255, blank=True)
    # The team was told the owner has not answered and the request's due date is near (once).
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["remind_on"], name="fulfilment_manual_remind", condition=Q(answered_at__isnull=True))
        ]

    def __str__(self) -> str:
        return f"manual task for {self.system_run}"


class SignatureNonce(models.Model):
    """A signed HTTP message's nonce, kept while its timestamp would still be accepted: a second
    message with the same nonce is a replay (the unique constraint decides, across processes)."""

    scope = models.CharField(max_length=63)  # who signed: the system's name, or the demo processor
    nonce = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "nonce"], name="fulfilment_nonce_once")]
        indexes = [models.Index(fields=["expires_at"], name="fulfilment_nonce_expiry")]

    def __str__(self) -> str:
        return f"nonce {self.nonce} of {self.scope}"


class AccessPackage(models.Model):
    run = models.OneToOneField(FulfilmentRun, on_delete=models.PROTECT, related_name="package")
    request = models.ForeignKey(DataSubjectRequest, on_delete=models.PROTECT, related_name="access_packages")
    kind = models.CharField(max_length=12, choices=PackageKind.choices)
    language = models.CharField(max_length=2)
    # The encrypted ZIP under private storage; emptied when the package is purged.
    file_name = models.CharField(max_length=255, blank=True)
    files = models.PositiveIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)  # the ZIP's size, before encryption
    sha256 = models.CharField(max_length=64)  # of the ZIP, before encryption
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    downloads = models.PositiveIntegerField(default=0)
    max_downloads = models.PositiveIntegerField()
    purged_at = models.DateTimeField(null=True, blank=True)
    purge_reason = models.CharField(max_length=40, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["expires_at"], name="fulfilment_pkg_expiry", condition=Q(purged_at__isnull=True))
        ]

    def __str__(self) -> str:
        return f"package of run {self.run_id}"


class DownloadCode(models.Model):
    """A fresh email code the requester types before their package is released."""

    package = models.ForeignKey(AccessPackage, on_delete=models.CASCADE, related_name="codes")
    code_digest = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # Set once confirmed: the session that may download until `grant_until`.
    grant_digest = models.CharField(max_length=64, blank=True)
    grant_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"download code for {self.package_id}"


class SystemHealth(models.Model):
    system = models.CharField(max_length=63, unique=True)
    kind = models.CharField(max_length=12)
    ok = models.BooleanField()
    detail = models.TextField(blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    checked_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.system}: {'ok' if self.ok else 'failing'}"


class ErasureLedgerEntry(models.Model):
    """One completed erasure: keyed HMACs of the person's identities (never the identities; the key,
    DSR_LEDGER_KEY, is outside the database), the systems erased, the request's reference and the
    date. Kept on the §7101 record-keeping basis (24 months) so that `dsr_erasure_replay` can erase
    again what a restored backup brings back."""

    run = models.OneToOneField(FulfilmentRun, on_delete=models.PROTECT, related_name="ledger_entry")
    reference = models.CharField(max_length=32)
    identity_digests = models.JSONField(default=list)  # ["email:<hmac hex>"]
    systems = models.JSONField(default=list)
    erased_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["erased_at"], name="fulfilment_ledger_erased_at")]

    def __str__(self) -> str:
        return f"ledger entry for {self.reference}"


class CorrectionDecision(models.TextChoices):
    PENDING = "pending", "Not decided"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class Correction(models.Model):
    """One correction the requester asked for (the request's field-by-field list, Art 16, §7023)
    in a correction run: where the data map holds that field, the current values the systems hold
    (read for the officer, cleared when the request closes), and the officer's decision with its
    reason, judged on the totality of the evidence (§7023(b),(d))."""

    run = models.ForeignKey(FulfilmentRun, on_delete=models.CASCADE, related_name="corrections")
    position = models.PositiveSmallIntegerField()  # 1-based, in the request's order
    field = models.CharField(max_length=40)  # the request form's word: full_name, phone, postal_address, ...
    wrong = models.TextField(blank=True)
    correct = models.TextField()
    # Where the map declares the word: ["system.collection.field"]; empty means it cannot be applied.
    declared = models.JSONField(default=list, blank=True)
    # What the systems hold now: [{"system", "collection", "key", "field", "value"}].
    found = models.JSONField(default=list, blank=True)
    decision = models.CharField(max_length=10, choices=CorrectionDecision.choices, default=CorrectionDecision.PENDING)
    reason = models.TextField(blank=True)
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "position"], name="fulfilment_correction_once_per_run")]
        ordering = ["run", "position"]

    def __str__(self) -> str:
        return f"correction {self.position} of run {self.run_id} ({self.decision})"


class CorrectionStatement(models.Model):
    """CCPA §7023(f): a consumer whose correction was rejected may submit a written statement of up
    to 250 words contesting the accuracy, which the business keeps with the record (one per request)."""

    request = models.OneToOneField(DataSubjectRequest, on_delete=models.PROTECT, related_name="correction_statement")
    text = models.TextField()
    words = models.PositiveSmallIntegerField()
    submitted_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"statement on {self.request_id}"
