"""Redis down must not take the public side down. The test starts its own redis-server (free port,
temp folder), runs the product against it as cache and broker with a real Celery worker on the
test database, STOPS it, submits through the web form and the API and signs in — all accepted
and stored, emails queued — then starts it again and checks that the worker sends those emails.

It calls the outbox redispatch itself (what beat does every DSR_EMAIL_REDISPATCH_SECONDS) with a
clock moved past that interval, instead of waiting a minute for beat."""

import shutil
import socket
import threading
import time
from datetime import timedelta

import kombu.exceptions
import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from dsr.models import DataSubjectRequest, EmailStatus, OutboundEmail
from tests.support.services import (
    RedisServer,
    celery_broker,
    celery_worker_start,
    celery_worker_stop,
    service_missing,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

FORM = {
    "request_type": "access",
    "regime": "ccpa",
    "relationship": "customer",
    "email": "form-down@example.org",
    "full_name": "Form Person",
    "access_period": "12_months",
}
API = {"type": "access", "regime": "ccpa", "email": "api-down@example.org", "full_name": "Api Person", "language": "en"}


@pytest.fixture
def product_on_own_redis(transactional_db, settings, tmp_path):
    """The cache and the Celery broker on a redis-server of this test's own, with the production
    socket timeouts and publish policy (config/settings/base.py, as with REDIS_URL set)."""
    if not shutil.which("redis-server"):
        service_missing("redis-server")
    from config.celery_app import app

    server = RedisServer(tmp_path)
    server.start()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": server.url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    assert app.conf.broker_transport_options.get("socket_timeout") == 0.5  # the production options
    try:
        with celery_broker(server.url):
            yield server
    finally:
        server.stop()


def _wait_sent(ids, seconds=90, redispatch=False):
    from django.conf import settings

    from dsr.services.emails import outbox_redispatch

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if redispatch:
            # What beat runs every DSR_EMAIL_REDISPATCH_SECONDS, with the clock moved past it.
            outbox_redispatch(now=timezone.now() + timedelta(seconds=settings.DSR_EMAIL_REDISPATCH_SECONDS + 1))
        statuses = set(OutboundEmail.objects.filter(pk__in=ids).values_list("status", flat=True))
        if statuses == {EmailStatus.SENT}:
            return
        time.sleep(0.5)
    raise AssertionError(f"emails {ids} not sent in time: {statuses}")


def _timed(label, timings, call):
    start = time.monotonic()
    response = call()
    timings[label] = round(time.monotonic() - start, 3)
    return response


def test_redis_down_submissions_and_sign_in_work_and_the_emails_go_out_after(product_on_own_redis, officer, tmp_path):
    """Before: with Redis stopped every submission and sign-in answered 500 and nothing was stored."""
    server = product_on_own_redis
    var_dir = tmp_path / "var"
    worker = celery_worker_start(redis_url=server.url, var_dir=var_dir)
    try:
        # Redis up: a first submission travels through the worker (it is up and consuming).
        api = APIClient()
        assert api.post("/api/v1/requests/", {**API, "email": "before@example.org"}, format="json").status_code == 201
        before = OutboundEmail.objects.get(to="before@example.org")
        _wait_sent([before.pk])

        server.stop()
        timings = {}
        form = _timed("web form", timings, lambda: Client().post("/", FORM))
        assert form.status_code == 302 and form["Location"].endswith("/submitted/"), form.content[:500]
        answer = _timed("API", timings, lambda: APIClient().post("/api/v1/requests/", API, format="json"))
        assert answer.status_code == 201, answer.content[:500]
        staff = Client()
        signed_in = _timed(
            "sign-in",
            timings,
            lambda: staff.post("/accounts/login/", {"username": "olivia", "password": "correct horse battery"}),
        )
        assert signed_in.status_code == 302 and signed_in["Location"] == "/dashboard/"
        assert _timed("dashboard", timings, lambda: staff.get("/dashboard/")).status_code == 200
        print("request times with Redis stopped (s):", timings)

        stored = {r.email: r for r in DataSubjectRequest.objects.filter(email__in=[FORM["email"], API["email"]])}
        assert set(stored) == {FORM["email"], API["email"]}
        assert all(r.status == "awaiting_verification" and r.acknowledged_at is None for r in stored.values())
        waiting = list(OutboundEmail.objects.filter(request__in=stored.values()))
        assert len(waiting) == 2 and {e.status for e in waiting} == {EmailStatus.QUEUED}

        server.start()  # same port; it comes back empty, as a restarted Redis without persistence
        _wait_sent([e.pk for e in waiting], redispatch=True)
    finally:
        celery_worker_stop(worker)
    sent_files = "".join(p.read_text() for p in (var_dir / "mail").glob("*.log"))
    for address in (FORM["email"], API["email"], "before@example.org"):
        assert sent_files.count(f"To: {address}") == 1, address
    for r in DataSubjectRequest.objects.filter(email__in=[FORM["email"], API["email"]]):
        assert r.acknowledged_at is not None and r.events.filter(event_type="acknowledged").count() == 1


class BlackHole:
    """A TCP port that accepts connections and never answers: a hung Redis (failover, a NAT or
    firewall dropping the connection). Closes what it accepted after `hold` seconds so that a
    missing timeout fails the test instead of hanging it."""

    def __init__(self, hold=20):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.hold = hold
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)
            threading.Timer(self.hold, conn.close).start()

    def close(self):
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def test_a_hung_redis_costs_a_submission_about_a_second(transactional_db, settings):
    """Measured: cache and broker on a port that never answers. Without socket timeouts a
    publish to it waited forever; now each operation gives up after half a second and the
    submission is stored."""
    hole = BlackHole()
    url = f"redis://127.0.0.1:{hole.port}/0"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    try:
        with celery_broker(url):
            from dsr.tasks import email_send

            start = time.monotonic()
            with pytest.raises(kombu.exceptions.OperationalError, match="Timeout"):
                email_send.delay(0)  # the read timed out: it did not wait for the port to close
            publish = time.monotonic() - start
            from dsr.services import emails

            emails._broker_paused_until = 0.0
            start = time.monotonic()
            answer = APIClient().post("/api/v1/requests/", {**API, "email": "hung@example.org"}, format="json")
            submission = time.monotonic() - start
    finally:
        hole.close()
    print(f"hung Redis: one publish {publish:.2f} s; an API submission (throttle, limit, publish) {submission:.2f} s")
    assert answer.status_code == 201
    assert OutboundEmail.objects.get(to="hung@example.org").status == EmailStatus.QUEUED
    # Generous bounds (expected about 0.5 s and 1.5 s): they catch a missing timeout (20 s here).
    assert publish < 5 and submission < 8
