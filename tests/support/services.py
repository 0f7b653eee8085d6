"""The real services some tests need: a free loopback port, a redis-server of a test's own, Celery
publishing to a real broker, a real Celery worker on the test database, a PostgreSQL session ended
from outside, and calls made from several threads at once."""

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections

from tests.support import ROOT

REQUIRE_SERVICES = os.environ.get("DSR_REQUIRE_SERVICES") == "1"


def service_missing(what: str):
    """Without the real service a test skips locally; in CI (DSR_REQUIRE_SERVICES=1) it fails."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required here (DSR_REQUIRE_SERVICES=1) but is not available")
    pytest.skip(f"{what} not available")


def free_port() -> int:
    """A loopback port nothing listens on (until someone binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server on a free port with its files in `folder`; stop and start it at will (it comes
    back empty, as a restarted Redis without persistence)."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.folder = folder
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        import redis

        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def celery_producers_reset(app):
    # Celery (and kombu's process-wide registry) keep connection and producer pools once made;
    # drop them so the next publish uses the broker now configured (the suite's other tests run
    # eager, on memory://, and acquire a producer too).
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@contextmanager
def celery_broker(url: str):
    """Inside the block tasks are published to the broker at `url` instead of running eagerly;
    afterwards the suite's eager, in-memory set-up is back."""
    from config.celery_app import app

    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url")}
    app.conf.update(task_always_eager=False, broker_url=url)
    celery_producers_reset(app)
    try:
        yield app
    finally:
        app.conf.update(saved)
        celery_producers_reset(app)


def celery_worker_start(*, redis_url: str, var_dir: Path):
    """A real Celery worker process (the product's settings, as `make run` and compose start it) on
    the test's PostgreSQL database, consuming from `redis_url`; files, mail included, under var_dir."""
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        # Run mode, with the test process's keys: the worker's audit events chain with the test's.
        DJANGO_SETTINGS_MODULE="config.settings.run",
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        DSR_AUDIT_KEY_ID=settings.DSR_AUDIT_KEY_ID,
        DSR_AUDIT_KEY=settings.DSR_AUDIT_KEYS[settings.DSR_AUDIT_KEY_ID],
        DSR_PACKAGE_KEY=settings.DSR_PACKAGE_KEY,
        DSR_SUPPRESSION_KEY=settings.DSR_SUPPRESSION_KEY,
        DSR_LEDGER_KEY=settings.DSR_LEDGER_KEY,
        DSR_ERASURE_HASH_KEY=settings.DSR_ERASURE_HASH_KEY,
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=redis_url,
        DSR_VAR_DIR=str(var_dir),
        DSR_SITE_URL="http://testserver",
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def celery_worker_stop(worker):
    """Stop the worker, print the end of its log (pytest shows it for a failed test), and wait until
    its database session is gone so that the test database can be dropped."""
    worker.terminate()
    try:
        out, _ = worker.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        out, _ = worker.communicate()
    print(out[-4000:])
    for _ in range(100):
        with connection.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cur.fetchone()[0] == 0:
                break
        time.sleep(0.1)


def postgres_backend_terminate():
    """End this connection's PostgreSQL session from another one: what a restart (or a failover)
    does to the connection the next query will use."""
    import psycopg

    db = connection.settings_dict
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"], dbname=db["NAME"], autocommit=True
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def in_threads(n: int, fn):
    """Call fn(0) … fn(n-1) in n threads released together; (results, exceptions) in completion order."""
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

    from celery import _state as celery_state

    join_will_block = celery_state.task_join_will_block()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # Celery keeps "a result.get() here would block" in one process-wide flag that each eager task
    # sets and restores; eager tasks racing in these threads can leave it set for later tests.
    celery_state._set_task_join_will_block(join_will_block)
    return results, errors
