import os

from django.core.management.base import BaseCommand, CommandError
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from dsr.fulfilment.demo_shop import demo_shop_create, shop_engine


class Command(BaseCommand):
    help = (
        "Create the demo shop database that the shipped data map's 'shop' system searches (run mode: "
        "var/demo_shop.sqlite3), with the demo customers. Safe to run again."
    )
    # The guard would only warn that the database this command is about to create is missing.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--dsn-env", default="DSR_DEMO_SHOP_DSN", help="the environment variable that holds the shop's DSN"
        )

    def handle(self, *args, **options):
        variable = options["dsn_env"]
        dsn = os.environ.get(variable, "")
        if not dsn:
            raise CommandError(f"{variable} is not set: it names the demo shop's database (run mode sets it)")
        try:
            engine = shop_engine(dsn)
        except (ArgumentError, NoSuchModuleError):
            raise CommandError(f"{variable} does not hold a database URL SQLAlchemy can use") from None
        try:
            added = demo_shop_create(engine)
        except SQLAlchemyError as error:
            raise CommandError(f"the demo shop could not be written: {type(error).__name__}") from None
        finally:
            engine.dispose()
        total = sum(added.values())
        if total:
            detail = ", ".join(f"{count} {table}" for table, count in added.items() if count)
            self.stdout.write(f"Demo shop: added {detail}.")
        else:
            self.stdout.write("Demo shop already holds its demo rows.")
