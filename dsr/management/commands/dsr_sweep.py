from datetime import date

from django.core.management.base import BaseCommand, CommandError

from dsr.services.sweep import deadline_sweep


class Command(BaseCommand):
    help = "Run one deadline sweep now and print what it did."

    def add_arguments(self, parser):
        parser.add_argument("--today", help="Sweep as if today were this date (YYYY-MM-DD), for checks.")

    def handle(self, *args, today=None, **options):
        day = None
        if today:
            try:
                day = date.fromisoformat(today)
            except ValueError:
                raise CommandError(f"--today must be a date like 2026-11-22, not '{today}'.") from None
        report = deadline_sweep(today=day)
        for reference, timer in report.fired:
            self.stdout.write(f"{reference}: {timer}")
        summary = ", ".join(f"{t} {report.count(t)}" for t in ("acknowledgement_due", "response_due_soon", "overdue"))
        self.stdout.write(f"Sweep for {report.today}: {len(report.fired)} timers fired ({summary}).")
