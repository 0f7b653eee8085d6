"""The erasure ledger against a real backup: a shop database (real PostgreSQL with pg_dump and
pg_restore; a SQLite file copied with SQLite's backup API) is backed up, the person is erased end
to end through the run (plan → approve → execute → verify → answer), the backup is restored — the
person is back — and `dsr_erasure_replay --since` erases them again, leaving everyone else as the
backup had them."""

from __future__ import annotations

import io
import shutil
import sqlite3
import subprocess
import textwrap
import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from sqlalchemy import create_engine, text

from dsr.fulfilment.connectors.sql import engines_dispose
from dsr.fulfilment.models import ErasureLedgerEntry, RunState
from dsr.fulfilment.services import erasure, runs
from dsr.services.audit import Actor
from tests.fulfilment.company import _postgres_url
from tests.fulfilment.conftest import verified_request
from tests.fulfilment.test_erasure_sql import ALL_DELETED, REFERENCES, shop_create
from tests.support.services import service_missing

pytestmark = pytest.mark.django_db
DSN_ENV = "DSR_TEST_RESTORE_DSN"


class Backup:
    """The shop's database and how to back it up and restore it, per backend."""

    def __init__(self, kind, tmp_path):
        self.kind = kind
        self.file = tmp_path / "backup"
        if kind == "sqlite":
            self.path = tmp_path / "shop.sqlite3"
            self.dsn = f"sqlite:///{self.path}"
            self.server = None
        else:
            base = _postgres_url()
            self.name = f"dsr_restore_{uuid.uuid4().hex[:10]}"
            self.server = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
            with self.server.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{self.name}"'))
            self.url = base.set(database=self.name)
            self.dsn = self.url.render_as_string(hide_password=False)
            # pg_dump and pg_restore take a libpq URI (no SQLAlchemy driver name).
            self.libpq = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.engine = create_engine(self.dsn)

    def dump(self):
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as source, sqlite3.connect(self.file) as target:
                source.backup(target)
            return
        subprocess.run([self._tool("pg_dump"), "-Fc", "-f", str(self.file), self.libpq], check=True)

    def restore(self):
        engines_dispose()
        self.engine.dispose()
        if self.kind == "sqlite":
            with sqlite3.connect(self.file) as source, sqlite3.connect(self.path) as target:
                source.backup(target)
            return
        subprocess.run(
            [self._tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "-d", self.libpq, str(self.file)],
            check=True,
        )

    @staticmethod
    def _tool(name):
        found = shutil.which(name)
        if not found:
            service_missing(f"PostgreSQL's {name}")
        return found

    def emails(self, table):
        with self.engine.connect() as connection:
            return sorted(r[0] for r in connection.execute(text(f"SELECT email FROM {table}")))

    def count(self, table):
        with self.engine.connect() as connection:
            return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()

    def drop(self):
        engines_dispose()
        self.engine.dispose()
        if self.server is not None:
            with self.server.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self.server.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shop_backup(request, tmp_path, settings, monkeypatch):
    backup = Backup(request.param, tmp_path)
    shop_create(backup.engine, None)
    monkeypatch.setenv(DSN_ENV, backup.dsn)
    datamap = tmp_path / "datamap.yaml"
    datamap.write_text(
        "systems:\n  - name: shop\n    owner: data@example.com\n    kind: sql\n"
        f"    connection: {{dsn_env: {DSN_ENV}}}\n"
        + "    references:\n"
        + "".join(f"      - {r}\n" for r in REFERENCES)
        + "    collections:\n"
        + textwrap.indent(textwrap.dedent(ALL_DELETED).strip("\n"), "      ")
        + "\n"
    )
    settings.DSR_DATAMAP = str(datamap)
    try:
        yield backup
    finally:
        backup.drop()


def _today():
    """Today in the product's time zone, the one `--since` is read in."""
    return timezone.localdate(timezone=ZoneInfo(settings.DSR_TIME_ZONE))


def _replay(*args) -> str:
    out = io.StringIO()
    call_command("dsr_erasure_replay", *args, stdout=out)
    return out.getvalue()


def test_replay_after_restoring_a_backup_erases_the_person_again(
    officer, shop_backup, django_capture_on_commit_callbacks
):
    shop_backup.dump()  # the nightly backup, taken before the request
    req = verified_request(officer=officer, request_type="erasure", email="ann@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL
    with django_capture_on_commit_callbacks(execute=True):
        erasure.erasure_approve(request=req, actor=Actor.staff(officer), user_id=officer.pk)
    run.refresh_from_db()
    assert run.state == RunState.DONE, run.systems.get().error
    with django_capture_on_commit_callbacks(execute=True):
        erasure.erasure_answer_send(request=req, actor=Actor.staff(officer))
    assert ErasureLedgerEntry.objects.get(run=run).systems == ["shop"]
    assert shop_backup.emails("customer") == ["bob@example.com"]
    assert (shop_backup.count("orders"), shop_backup.count("order_items")) == (1, 1)
    since = _today().isoformat()
    assert "nothing found again" in _replay("--since", since)

    shop_backup.restore()  # the disk failed; last night's backup comes back, and Ann with it
    assert shop_backup.emails("customer") == ["ann@example.com", "bob@example.com"]
    assert shop_backup.count("orders") == 3

    dry = _replay("--since", since, "--dry-run")
    assert f"{req.reference} shop: found 6 rows again; would erase them (dry run)" in dry
    assert shop_backup.emails("customer") == ["ann@example.com", "bob@example.com"]
    out = _replay("--since", since)
    assert f"{req.reference} shop: found 6 rows again; erased" in out
    assert shop_backup.emails("customer") == ["bob@example.com"]
    assert shop_backup.emails("newsletter") == ["bob@example.com"]
    assert (shop_backup.count("orders"), shop_backup.count("order_items")) == (1, 1)
    assert "nothing found again" in _replay("--since", since)


def test_a_backup_from_before_the_ledger_window_is_not_replayed(
    officer, shop_backup, django_capture_on_commit_callbacks
):
    shop_backup.dump()
    req = verified_request(officer=officer, request_type="erasure", email="ann@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        runs.fulfilment_start(request=req, actor=Actor.staff(officer))
    with django_capture_on_commit_callbacks(execute=True):
        erasure.erasure_approve(request=req, actor=Actor.staff(officer), user_id=officer.pk)
    shop_backup.restore()
    # --since names the backup's date; an erasure before that date was already in the backup.
    tomorrow = (_today() + timedelta(days=1)).isoformat()
    assert req.reference not in _replay("--since", tomorrow)
    assert "ann@example.com" in shop_backup.emails("customer")
