"""Behaviour that depends on the real services: row locks on PostgreSQL, and a task that travels
through a real Celery worker on a real Redis. Skipped locally without them; CI runs them."""

import os
import subprocess
import sys
import threading
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, connections

from dsr.errors import TransitionNotAllowed
from dsr.models import AuditEvent, DataSubjectRequest, EmailStatus, OutboundEmail
from dsr.services.audit import Actor
from dsr.services.staff_actions import request_verify
from dsr.services.sweep import deadline_sweep
from tests.factories import officer_create, request_create

LA = ZoneInfo("America/Los_Angeles")
ROOT = Path(__file__).resolve().parent.parent


def _in_threads(n, fn):
    barrier = threading.Barrier(n)
    results, errors = [], []

    def run(i):
        try:
            barrier.wait(timeout=10)
            results.append(fn(i))
        except Exception as exc:  # collected and asserted on by the caller
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors


@pytest.mark.postgres
def test_concurrent_transitions_one_wins(transactional_db):
    officer = officer_create(username="pg-officer", email="pg@company.example")
    r = request_create()
    results, errors = _in_threads(4, lambda i: request_verify(request=r, actor=Actor.staff(officer), note=f"thread {i}"))
    assert len(results) == 1
    assert len(errors) == 3 and all(isinstance(e, TransitionNotAllowed) for e in errors)
    assert AuditEvent.objects.filter(request=r, event_type="verified").count() == 1
    seqs = list(AuditEvent.objects.filter(request=r).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.postgres
def test_concurrent_intake_never_repeats_a_reference(transactional_db):
    received = datetime(2026, 5, 4, 9, 0, tzinfo=LA)
    results, errors = _in_threads(8, lambda i: request_create(email=f"c{i}@example.org", received_at=received).reference)
    assert errors == []
    assert len(set(results)) == 8
    assert sorted(results) == [f"DSR-2026-{n:06d}" for n in range(1, 9)]


@pytest.mark.postgres
def test_two_sweeps_at_once_fire_each_timer_once(transactional_db):
    officer_create(username="pg-officer2", email="pg2@company.example")
    for i in range(30):
        request_create(email=f"s{i}@example.org", received_at=datetime(2026, 1, 5, 9, 0, tzinfo=LA))
    results, errors = _in_threads(2, lambda i: deadline_sweep(today=date(2026, 3, 1)))
    assert errors == []
    fired = [f for report in results for f in report.fired]
    # The acknowledgements went out at commit, so only the overdue timer is due: once per request.
    assert len(fired) == len(set(fired)) == 30
    assert {timer for _, timer in fired} == {"overdue"}
    assert AuditEvent.objects.filter(event_type="overdue").count() == 30
    assert OutboundEmail.objects.filter(template="staff_overdue").count() == 30


@pytest.mark.postgres
@pytest.mark.redis
def test_email_goes_through_a_real_celery_worker_on_redis(transactional_db, tmp_path):
    from config.celery_app import app

    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.run", DJANGO_SECRET_KEY="worker-secret-key", DSR_AUDIT_KEY="worker-audit-key",
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        DSR_VAR_DIR=str(tmp_path),
        DSR_SITE_URL="http://testserver",
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO",
         "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url")}

    def producers_reset():
        # Celery (and kombu's process-wide registry) keep connection and producer pools once
        # made; drop them so the next send uses the broker now configured (the suite's other
        # tests run eager, on memory://, and acquire a producer too).
        from kombu import pools

        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    try:
        app.conf.update(task_always_eager=False, broker_url=os.environ["REDIS_URL"])
        producers_reset()
        r = request_create(email="worker@example.org")  # transactional_db: commits, so on_commit fires
        email = OutboundEmail.objects.get(request=r)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            email.refresh_from_db()
            if email.status == EmailStatus.SENT:
                break
            time.sleep(0.3)
        assert email.status == EmailStatus.SENT, "the worker did not send the email in time"
        files = list((tmp_path / "mail").glob("*.log"))
        assert len(files) == 1 and "worker@example.org" in files[0].read_text()
        r.refresh_from_db()
        assert r.acknowledged_at is not None
        assert DataSubjectRequest.objects.get(pk=r.pk).events.filter(event_type="acknowledged").count() == 1
    finally:
        app.conf.update(saved)
        producers_reset()
        worker.terminate()
        try:
            out, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            out, _ = worker.communicate()
        print(out[-3000:])
        # The worker's database session ends just after its process does; wait for it so the
        # test database can be dropped.
        for _ in range(100):
            with connection.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
                if cur.fetchone()[0] == 0:
                    break
            time.sleep(0.1)
