"""`python manage.py dsr_erasure_replay --since DATE [--dry-run]`: after a backup is restored,
erase again what it brought back. The erasure ledger names each completed erasure (keyed HMACs of
the identities, the systems); the identities come from the request records kept under §7101. Each
system is planned again and, unless `--dry-run`, erased; exit 1 naming each failure."""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dsr.fulfilment.services.erasure import ledger_replay


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since: '{value}' is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = "Erase again, in every system, the people the erasure ledger lists since DATE (after a restore)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--since", required=True, help="the day the restored backup was taken (YYYY-MM-DD, the product's time zone)"
        )
        parser.add_argument("--dry-run", action="store_true", help="plan only: say what would be erased again")

    def handle(self, *args, **options):
        since = _date(options["since"])
        dry_run = options["dry_run"]
        # The day starts at midnight in the product's time zone (DSR_TIME_ZONE), as on every page.
        start = datetime.combine(since, time.min, tzinfo=ZoneInfo(settings.DSR_TIME_ZONE))
        results = ledger_replay(since=start, dry_run=dry_run)
        failures = [r for r in results if r.error]
        for r in results:
            if r.error:
                self.stdout.write(f"{r.reference} {r.system}: FAILED: {r.error}")
            elif not r.found:
                self.stdout.write(f"{r.reference} {r.system}: nothing found again")
            elif dry_run:
                self.stdout.write(f"{r.reference} {r.system}: found {r.found} rows again; would erase them (dry run)")
            else:
                done = ", ".join(
                    f"{c}: {n.get('deleted', 0)} deleted, {n.get('updated', 0)} masked" for c, n in r.counts.items()
                )
                self.stdout.write(f"{r.reference} {r.system}: found {r.found} rows again; erased ({done})")
        entries = len({r.reference for r in results})
        self.stdout.write(f"{entries} ledger entries since {since}, {len(results)} systems, {len(failures)} failed.")
        if failures:
            raise CommandError("replay failed for: " + ", ".join(f"{r.reference} {r.system}" for r in failures))
