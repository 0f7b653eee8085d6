from django.core.management.base import BaseCommand, CommandError

from dsr.services.audit_checkpoints import audit_trail_verify, audit_verification_mail


class Command(BaseCommand):
    help = (
        "Check every request's audit chain (HMAC under the audit key), the latest signed checkpoint "
        "and the retention tombstones; write a new checkpoint when all hold. Exit 1 naming each "
        "changed, removed, reordered or deleted event or request."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-checkpoint", action="store_true", help="check only; write no new checkpoint")

    def handle(self, *args, **options):
        result = audit_trail_verify(write_checkpoint=not options["no_checkpoint"])
        audit_verification_mail(result)
        for p in result.problems:
            self.stderr.write(f"{p.reference} event #{p.seq}: {p.problem}" if p.reference else p.problem)
        if result.problems:
            raise CommandError(
                f"{len(result.problems)} problem(s) in the audit trail of {result.checked} request(s); "
                "no checkpoint written."
            )
        self.stdout.write(f"Audit trail intact: {result.checked} request(s) checked.")
        if result.checkpoint_read:
            self.stdout.write(
                f"Compared with checkpoint {result.checkpoint_read}: {result.purged} purged request(s) "
                "matched their tombstones."
            )
        if result.checkpoint_written:
            self.stdout.write(f"Checkpoint written: {result.checkpoint_written}")
