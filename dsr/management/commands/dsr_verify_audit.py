from django.core.management.base import BaseCommand, CommandError

from dsr.models import AuditEvent, DataSubjectRequest
from dsr.services.audit import audit_chain_check


class Command(BaseCommand):
    help = "Check every request's audit hash chain; exit 1 and list the breaks if any was tampered with."

    def handle(self, *args, **options):
        problems = []
        checked = 0
        requests = DataSubjectRequest.objects.order_by("pk").values_list("pk", "reference", "audit_seq", "audit_head")
        for pk, reference, head_seq, head_hash in requests.iterator(chunk_size=2000):
            events = AuditEvent.objects.filter(request_id=pk).order_by("seq")
            problems.extend(audit_chain_check(reference=reference, events=events, head_seq=head_seq, head_hash=head_hash))
            checked += 1
        for p in problems:
            self.stderr.write(f"{p.reference} event #{p.seq}: {p.problem}")
        if problems:
            raise CommandError(f"{len(problems)} problem(s) in the audit trail of {checked} request(s).")
        self.stdout.write(f"Audit trail intact: {checked} request(s) checked.")
