"""Fulfilment benchmark (issue 10): answering a request to know from the company's systems, on
PostgreSQL loaded with ../shared/bench/customers.sql (1,000,000 rows; bench<N>@example.com own 10
rows each), with a real Celery worker on Redis.

    DATABASE_URL=postgres://dsr:dsr@127.0.0.1:5432/dsr REDIS_URL=redis://127.0.0.1:6379/0 make bench-fulfilment

(a) data gathering for one person in the SQL connector, three rounds of 100, beside the raw
    indexed queries that fetch the same rows on a warm connection (the floor);
(b) one access request end to end, from `POST …/fulfilment/start/` to the data gathered and
    written (encrypted JSON lines: what Fides does), and to the encrypted package, 30+ runs;
(c) a batch of 100 access requests, started together, until every package is built;
(d) a person with 100,000 rows: time, package size and the process's peak memory;
(e) one erasure end to end for a 10-row person (start → plan → approve → erased and verified);
(f) the erasure of the person with 100,000 rows: plan, execution, verification, peak memory;
(g) a batch of 100 erasures, started together, planned, approved and erased by the real worker.

Each part prints what ran. Results go to bench/RESULTS.md (section "fulfilment").
Sizes for a quick look: BENCH_F_GATHER=100 BENCH_F_E2E=30 BENCH_F_BATCH=100 BENCH_F_BIG=100000.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "bench" / "work" / "fulfilment"
CUSTOMERS_SQL = ROOT.parent / "shared" / "bench" / "customers.sql"
GATHER_RUNS = int(os.environ.get("BENCH_F_GATHER", "100"))
GATHER_ROUNDS = int(os.environ.get("BENCH_F_GATHER_ROUNDS", "3"))
E2E_RUNS = int(os.environ.get("BENCH_F_E2E", "30"))
BATCH = int(os.environ.get("BENCH_F_BATCH", "100"))
BIG_ROWS = int(os.environ.get("BENCH_F_BIG", "100000"))
ERASE_BATCH = int(os.environ.get("BENCH_F_ERASE_BATCH", "100"))
BIG_EMAIL = "bench-big@example.com"
BIG_ID = 900001


def _db_url(name: str) -> str:
    return os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}"


def _sqlalchemy_dsn(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def shop_load() -> str:
    """The company database, loaded once from customers.sql (kept between runs), plus one person
    with BIG_ROWS orders for part (d). Returns its URL."""
    import psycopg

    name = "dsr_bench_customers"
    url = _db_url(name)
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(url, autocommit=True) as conn:
        loaded = conn.execute("SELECT to_regclass('public.call_records') IS NOT NULL").fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM customer").fetchone()[0] if loaded else 0
        # Part (e) erases bench people: a database with any of them erased is loaded again.
        erased = (
            conn.execute("SELECT count(*) FROM customer WHERE id <= 1000 AND email IS NULL").fetchone()[0]
            if loaded
            else 0
        )
    if rows < 200_000 or erased:
        print(f"loading {CUSTOMERS_SQL} into {name} …", flush=True)
        subprocess.run(["psql", url, "-q", "-f", str(CUSTOMERS_SQL)], check=True, stdout=subprocess.DEVNULL)
    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM orders WHERE customer_id = %s", (BIG_ID,)).fetchone()[0]
        # Part (f) erases the big person (the customer row's email set to null): made again.
        intact = conn.execute("SELECT count(*) FROM customer WHERE id = %s AND email = %s", (BIG_ID, BIG_EMAIL))
        if have != BIG_ROWS or not intact.fetchone()[0]:
            conn.execute("DELETE FROM orders WHERE customer_id = %s", (BIG_ID,))
            conn.execute("DELETE FROM customer WHERE id = %s", (BIG_ID,))
            conn.execute(
                "INSERT INTO customer (id, email, name, city, country) VALUES (%s, %s, 'Big Buyer', 'Oslo', 'NO')",
                (BIG_ID, BIG_EMAIL),
            )
            conn.execute(
                "INSERT INTO orders (customer_id, ordered_at, status, total_cents, shipping_name, shipping_address) "
                "SELECT %s, now() - (g || ' minutes')::interval, 'delivered', 1000 + g %% 9000, 'Big Buyer', "
                "'Street ' || g FROM generate_series(1, %s) g",
                (BIG_ID, BIG_ROWS),
            )
            conn.execute("ANALYZE")
    return url


def datamap_write(path: Path) -> None:
    """The shipped map's `shop` system alone, its DSN from BENCH_SHOP_DSN."""
    import yaml

    shipped = yaml.safe_load((ROOT / "config" / "datamap.yaml").read_text())
    shop = next(s for s in shipped["systems"] if s["name"] == "shop")
    shop["connection"]["dsn_env"] = "BENCH_SHOP_DSN"
    path.write_text(yaml.safe_dump({"version": 1, "systems": [shop]}, sort_keys=False))


def env_for(var_dir: Path, shop_url: str) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.run",
        DSR_VAR_DIR=str(var_dir),
        DATABASE_URL=_db_url("dsr_bench_fulfilment"),
        DSR_DATAMAP=str(var_dir / "datamap.yaml"),
        BENCH_SHOP_DSN=_sqlalchemy_dsn(shop_url),
        DSR_FULFILMENT_AUTO_START="0",
        DSR_DEMO_SYSTEMS="0",
        DJANGO_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def machine() -> str:
    from bench.run import machine as run_machine

    return run_machine()


# --- The child: everything that needs Django -----------------------------------------------------


def _django():
    import django

    django.setup()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def part_gather(shop_url: str) -> dict:
    """(a): the connector's export of one person into a sink that only counts, beside the raw
    queries (psycopg, warm connection, the same five indexed look-ups, all rows fetched)."""
    import psycopg

    from dsr.fulfilment.connectors import connector_for
    from dsr.fulfilment.connectors.base import Subject
    from dsr.fulfilment.datamap import datamap_load

    system = datamap_load().system("shop")
    connector = connector_for(system)

    class Counting:
        rows = 0

        def write(self, collection, record):
            Counting.rows += 1

    def connector_once(n: int) -> float:
        subject = Subject(reference=f"BENCH-{n}", identities={"email": f"bench{n}@example.com"})
        start = time.perf_counter()
        connector.export(subject, Counting())
        return (time.perf_counter() - start) * 1000

    raw = psycopg.connect(shop_url)
    raw.autocommit = True

    def raw_once(n: int) -> float:
        email = f"bench{n}@example.com"
        start = time.perf_counter()
        with raw.cursor() as cur:
            cur.execute("SELECT * FROM customer WHERE email = %s", (email,))
            ids = [row[0] for row in cur.fetchall()]
            cur.execute("SELECT * FROM orders WHERE customer_id = ANY(%s)", (ids,))
            cur.fetchall()
            cur.execute("SELECT * FROM chat_messages WHERE customer_id = ANY(%s)", (ids,))
            cur.fetchall()
            cur.execute("SELECT * FROM call_records WHERE customer_id = ANY(%s)", (ids,))
            cur.fetchall()
            cur.execute("SELECT * FROM newsletter_subscriptions WHERE email = %s", (email,))
            cur.fetchall()
        return (time.perf_counter() - start) * 1000

    for n in range(1, 11):  # warm both connections
        connector_once(n)
        raw_once(n)
    Counting.rows = 0
    connector_ms, raw_ms, ratios = [], [], []
    for _ in range(GATHER_ROUNDS):
        round_connector, round_raw = [], []
        for i in range(GATHER_RUNS):  # alternate, so drift hits both alike
            n = 11 + i % 990
            # Whichever reads a person's rows first may find them colder: take turns at going first.
            if i % 2:
                round_raw.append(raw_once(n))
                round_connector.append(connector_once(n))
            else:
                round_connector.append(connector_once(n))
                round_raw.append(raw_once(n))
        ratios.append(statistics.median(round_connector) / statistics.median(round_raw))
        connector_ms += round_connector
        raw_ms += round_raw
    rows_per_person = Counting.rows / len(connector_ms)
    raw.close()
    return {
        "runs": GATHER_RUNS,
        "rounds": GATHER_ROUNDS,
        "rows_per_person": rows_per_person,
        "connector_median_ms": statistics.median(connector_ms),
        "connector_p95_ms": _percentile(connector_ms, 0.95),
        "raw_median_ms": statistics.median(raw_ms),
        "raw_p95_ms": _percentile(raw_ms, 0.95),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def _officer_and_client():
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from dsr.services.tokens import api_token_create

    user_model = get_user_model()
    if not user_model.objects.filter(username="bench-officer").exists():
        call_command(
            "dsr_create_officer", "bench-officer", email="bench-officer@example.com",
            password="correct horse battery", role="officer", stdout=open(os.devnull, "w"),
        )  # fmt: skip
    user = user_model.objects.get(username="bench-officer")
    key = api_token_create(user=user, name="bench", replace=True)[1]
    return Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {key}"), user


def _verified_requests(user, emails: list[str], request_type: str = "access_specific") -> list:
    from django.utils import timezone

    from dsr.services.audit import Actor
    from dsr.services.intake import request_submit
    from dsr.services.staff_actions import request_verify

    made = []
    for email in emails:
        created = request_submit(
            request_type=request_type, regime="gdpr", email=email, full_name="Bench Person", language="en",
            received_at=timezone.now(), channel="web", actor=None, details="", intake=None,
        )  # fmt: skip
        made.append(request_verify(request=created, actor=Actor.staff(user), note="bench"))
    return made


def _outbox_drain(timeout: float = 120) -> None:
    """Wait until the emails the set-up queued are sent, so they do not share the worker with the
    measured runs."""
    from dsr.models import OutboundEmail

    deadline = time.monotonic() + timeout
    while OutboundEmail.objects.filter(status="queued").exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def _wait(predicate, timeout: float = 60, step: float = 0.001) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not finish in time")
        time.sleep(step)
    return time.perf_counter()


def part_end_to_end() -> dict:
    """(b): one request at a time through the API and the real worker."""
    from dsr.fulfilment.models import AccessPackage, SystemRun

    client, user = _officer_and_client()
    requests = _verified_requests(user, [f"bench{n}@example.com" for n in range(1, E2E_RUNS + 6)])
    _outbox_drain()
    gathered, packaged = [], []
    for i, obj in enumerate(requests):
        start = time.perf_counter()
        response = client.post(f"/api/v1/staff/requests/{obj.reference}/fulfilment/start/")
        assert response.status_code == 202, response.content
        done_at = _wait(lambda o=obj: SystemRun.objects.filter(run__request=o, status="done").exists())
        package_at = _wait(lambda o=obj: AccessPackage.objects.filter(request=o).exists())
        if i >= 5:  # the first five warm the worker
            gathered.append((done_at - start) * 1000)
            packaged.append((package_at - start) * 1000)
    return {
        "runs": len(gathered),
        "gathered_median_ms": statistics.median(gathered),
        "gathered_p95_ms": _percentile(gathered, 0.95),
        "package_median_ms": statistics.median(packaged),
        "package_p95_ms": _percentile(packaged, 0.95),
    }


def part_batch(clients: int, first: int) -> dict:
    """(c): BATCH requests started through the API by `clients` clients (threads, each its own
    connection and token session), until every person's data is gathered and written, and until
    every package exists."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from dsr.fulfilment.models import AccessPackage, SystemRun

    client, user = _officer_and_client()
    requests = _verified_requests(user, [f"bench{n}@example.com" for n in range(first, first + BATCH)])
    _outbox_drain()
    ids = [r.pk for r in requests]
    token = client.defaults["HTTP_AUTHORIZATION"]
    shares = [requests[i::clients] for i in range(clients)]

    def post_all(share: list) -> None:
        from django.test import Client

        own = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=token)
        try:
            for obj in share:
                response = own.post(f"/api/v1/staff/requests/{obj.reference}/fulfilment/start/")
                assert response.status_code == 202, response.content
        finally:
            connections.close_all()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(post_all, shares))
    posted = time.perf_counter()
    gathered = _wait(
        lambda: SystemRun.objects.filter(run__request_id__in=ids, status="done").count() == len(ids),
        timeout=600,
        step=0.01,
    )
    end = _wait(lambda: AccessPackage.objects.filter(request_id__in=ids).count() == len(ids), timeout=600, step=0.01)
    return {
        "clients": clients,
        "requests": len(ids),
        "posted_seconds": posted - start,
        "gathered_seconds": gathered - start,
        "gathered_per_minute": len(ids) / (gathered - start) * 60,
        "seconds": end - start,
        "per_minute": len(ids) / (end - start) * 60,
    }


def _erased_and_verified(request_ids: list[int]) -> int:
    """How many of these requests' erasures have the shop erased and verified (searched again).
    At that moment the shop's recipients in the shipped map are told too (owners' tasks); the run
    then waits for their confirmations, which no bench can give in its place."""
    from dsr.fulfilment.models import SystemRun

    return SystemRun.objects.filter(
        run__request_id__in=request_ids, system="shop", status="done", verification__ok=True
    ).count()


# The shipped map's shop lists two recipients (parcel carriers, advertising partners).
RECIPIENTS = 2


def _recipients_waiting(request_id: int) -> int:
    from dsr.fulfilment.models import SystemRun

    return SystemRun.objects.filter(
        run__request_id=request_id, system__startswith="recipient:", status="waiting"
    ).count()


def part_erasure() -> dict:
    """(e): one erasure end to end through the API and the real worker, for a 10-row person: start
    (the plan, rehearsed and rolled back), then approve (executed in one transaction, verified)."""
    from dsr.fulfilment.models import FulfilmentRun

    client, user = _officer_and_client()
    people = [f"bench{n}@example.com" for n in range(901, 901 + E2E_RUNS + 5)]
    requests = _verified_requests(user, people, request_type="erasure")
    _outbox_drain()
    planned, executed, total = [], [], []
    for i, obj in enumerate(requests):
        start = time.perf_counter()
        response = client.post(f"/api/v1/staff/requests/{obj.reference}/fulfilment/start/")
        assert response.status_code == 202, response.content
        plan_at = _wait(lambda o=obj: FulfilmentRun.objects.filter(request=o, state="awaiting_approval").exists())
        approve_at = time.perf_counter()
        response = client.post(f"/api/v1/staff/requests/{obj.reference}/fulfilment/approve/")
        assert response.status_code in (200, 202), response.content
        done_at = _wait(lambda o=obj: _erased_and_verified([o.pk]) == 1)
        if i >= 5:
            planned.append((plan_at - start) * 1000)
            executed.append((done_at - approve_at) * 1000)
            total.append((done_at - start) * 1000)
        # Untimed: the recipients this erasure told (owners' tasks, emails) are done with before the
        # next one starts, so that each run is one erasure on an idle worker, as its title says.
        _wait(lambda o=obj: _recipients_waiting(o.pk) >= RECIPIENTS, timeout=60, step=0.005)
        _outbox_drain()
    return {
        "runs": len(total),
        "plan_median_ms": statistics.median(planned),
        "execute_median_ms": statistics.median(executed),
        "total_median_ms": statistics.median(total),
        "total_p95_ms": _percentile(total, 0.95),
    }


def part_erasure_batch() -> dict:
    """(g): ERASE_BATCH erasures for 10-row people started through the API one after another, each
    plan approved as soon as it awaits approval, until every one is erased and verified."""
    from dsr.fulfilment.models import FulfilmentRun

    client, user = _officer_and_client()
    people = [f"bench{n}@example.com" for n in range(501, 501 + ERASE_BATCH)]
    requests = _verified_requests(user, people, request_type="erasure")
    _outbox_drain()
    ids = [r.pk for r in requests]
    start = time.perf_counter()
    for obj in requests:
        response = client.post(f"/api/v1/staff/requests/{obj.reference}/fulfilment/start/")
        assert response.status_code == 202, response.content
    posted = time.perf_counter()
    approved: set[int] = set()
    while len(approved) < len(requests):
        waiting = FulfilmentRun.objects.filter(request_id__in=ids, state="awaiting_approval").exclude(
            request_id__in=approved
        )
        for request_id, reference in waiting.values_list("request_id", "request__reference"):
            response = client.post(f"/api/v1/staff/requests/{reference}/fulfilment/approve/")
            assert response.status_code in (200, 202), response.content
            approved.add(request_id)
        if time.perf_counter() - start > 600:
            raise TimeoutError("the plans did not all arrive in time")
        time.sleep(0.01)
    all_approved = time.perf_counter()
    end = _wait(lambda: _erased_and_verified(ids) == len(ids), timeout=600, step=0.01)
    failed = FulfilmentRun.objects.filter(request_id__in=ids, state="failed").count()
    return {
        "requests": len(ids),
        "failed": failed,
        "posted_seconds": posted - start,
        "approved_seconds": all_approved - start,
        "seconds": end - start,
        "per_minute": len(ids) / (end - start) * 60,
    }


def part_erasure_big() -> dict:
    """(f), in a process of its own with eager tasks: plan, approve and erase the person with
    BIG_ROWS orders (the orders kept for tax law, their shipping details nulled), then verify."""
    from django.db import transaction

    from dsr.fulfilment.models import FulfilmentRun, SystemRun
    from dsr.fulfilment.services.erasure import erasure_approve
    from dsr.fulfilment.services.runs import fulfilment_start
    from dsr.services.audit import Actor

    _, user = _officer_and_client()
    (obj,) = _verified_requests(user, [BIG_EMAIL], request_type="erasure")
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with transaction.atomic():
        fulfilment_start(request=obj, actor=Actor.staff(user))
    planned = time.perf_counter()
    run = FulfilmentRun.objects.get(request=obj)
    assert run.state == "awaiting_approval", run.state
    plan_peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    approve_start = time.perf_counter()
    with transaction.atomic():
        erasure_approve(request=obj, actor=Actor.staff(user), user_id=user.pk)
    end = time.perf_counter()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run.refresh_from_db()
    system_run = SystemRun.objects.get(run=run, system="shop")
    counts = system_run.erased.get("counts", {})
    return {
        "state": run.state,
        "recipients_told": SystemRun.objects.filter(run=run, system__startswith="recipient:").count(),
        "rows": system_run.records,
        "updated": sum(c.get("updated", 0) for c in counts.values()),
        "deleted": sum(c.get("deleted", 0) for c in counts.values()),
        "verified": bool(system_run.verification.get("ok")),
        "plan_json_bytes": len(json.dumps(system_run.plan)),
        "plan_seconds": planned - start,
        "execute_seconds": end - approve_start,
        "rss_before_mib": before_kib / 1024,
        "rss_plan_peak_mib": plan_peak_kib / 1024,
        "rss_peak_mib": peak_kib / 1024,
    }


def part_big() -> dict:
    """(d), in a process of its own with eager tasks: search and package one person's BIG_ROWS rows."""
    from django.db import transaction

    from dsr.fulfilment.models import AccessPackage, SystemRun
    from dsr.fulfilment.services.runs import fulfilment_start
    from dsr.services.audit import Actor

    _, user = _officer_and_client()
    (obj,) = _verified_requests(user, [BIG_EMAIL])
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with transaction.atomic():
        fulfilment_start(request=obj, actor=Actor.staff(user))
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    system_run = SystemRun.objects.get(run__request=obj)
    package = AccessPackage.objects.get(request=obj)
    from dsr.fulfilment.results import held_path

    stored = held_path(package.file_name).stat().st_size if package.file_name else 0
    return {
        "rows": system_run.records,
        "status": system_run.status,
        "seconds": seconds,
        "zip_bytes": package.bytes,
        "stored_bytes": stored,
        "files": package.files,
        "rss_before_mib": before_kib / 1024,
        "rss_peak_mib": peak_kib / 1024,
    }


def child(part: str) -> None:
    _django()
    shop_url = os.environ["BENCH_SHOP_URL"]
    result = {
        "gather": lambda: part_gather(shop_url),
        "e2e": part_end_to_end,
        "batch1": lambda: part_batch(1, 101),
        "batch4": lambda: part_batch(4, 101 + BATCH),
        "erasure": part_erasure,
        "big": part_big,
        "erase_batch": part_erasure_batch,
        "erase_big": part_erasure_big,
    }[part]()
    print(json.dumps(result))


# --- The driver -----------------------------------------------------------------------------------


def _run_child(env: dict, part: str, extra: dict | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", part], cwd=ROOT, env={**env, **(extra or {})}, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _worker_start(env: dict, concurrency: int) -> subprocess.Popen:
    log = open(WORK / "worker.log", "w")  # noqa: SIM115 - the worker's lifetime
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork", "--concurrency",
         str(concurrency), "--loglevel", os.environ.get("BENCH_F_WORKER_LOG", "WARNING"), "--without-gossip",
         "--without-mingle", "--without-heartbeat",
         "--prefetch-multiplier", "1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _worker_stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()


def main() -> None:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        sys.exit("bench-fulfilment needs DATABASE_URL (PostgreSQL) and REDIS_URL: it measures the real services")
    if not CUSTOMERS_SQL.exists():
        sys.exit(f"{CUSTOMERS_SQL} is missing (the shared benchmark data)")
    import psycopg

    shop_url = shop_load()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    env = env_for(WORK, shop_url)
    env["BENCH_SHOP_URL"] = shop_url
    datamap_write(WORK / "datamap.yaml")
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "dsr_bench_fulfilment"')
        conn.execute('CREATE DATABASE "dsr_bench_fulfilment"')
    subprocess.run([sys.executable, "-m", "config.var_init"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip

    print("(a) data gathering in the SQL connector …", flush=True)
    gather = _run_child(env, "gather")
    print(json.dumps(gather), flush=True)
    concurrency = int(os.environ.get("BENCH_F_CONCURRENCY", 0)) or 2 * (os.cpu_count() or 1)
    worker = _worker_start(env, concurrency)
    try:
        time.sleep(3)
        print("(b) end to end …", flush=True)
        e2e = _run_child(env, "e2e")
        print(json.dumps(e2e), flush=True)
        print("(c) a batch, one client, then four …", flush=True)
        batch = [_run_child(env, "batch1"), _run_child(env, "batch4")]
        print(json.dumps(batch), flush=True)
        print("(e) an erasure end to end …", flush=True)
        erasure = _run_child(env, "erasure")
        print(json.dumps(erasure), flush=True)
        print("(g) a batch of erasures …", flush=True)
        erase_batch = _run_child(env, "erase_batch")
        print(json.dumps(erase_batch), flush=True)
    finally:
        _worker_stop(worker)
    print("(d) a person with many rows …", flush=True)
    big = _run_child(env, "big", {"CELERY_TASK_ALWAYS_EAGER": "1"})
    print(json.dumps(big), flush=True)
    print("(f) the erasure of the person with many rows …", flush=True)
    erase_big = _run_child(env, "erase_big", {"CELERY_TASK_ALWAYS_EAGER": "1"})
    print(json.dumps(erase_big), flush=True)
    section = report(gather, e2e, batch, big, concurrency, erasure, erase_big, erase_batch)
    from bench.run import results_section_write

    results_section_write("fulfilment", section)
    print(section)


def report(
    gather: dict,
    e2e: dict,
    batch: list[dict],
    big: dict,
    concurrency: int,
    erasure: dict,
    erase_big: dict,
    erase_batch: dict,
) -> str:
    ratio = gather["connector_median_ms"] / gather["raw_median_ms"]
    return "\n".join(
        [
            "<!-- fulfilment -->",
            "## Fulfilment: answering a request to know (PostgreSQL + Redis, real Celery worker)",
            "",
            f"Written by `make bench-fulfilment` on {datetime.now(UTC).date().isoformat()}.",
            f"Machine: {machine()}.",
            "Company database: PostgreSQL loaded with `../shared/bench/customers.sql` (1,000,000 rows; "
            "bench<N>@example.com own 10 rows each), searched by the `sql` connector through the shipped map's "
            "`shop` system. Product database: PostgreSQL; broker: Redis; worker: Celery prefork, "
            f"concurrency {concurrency} (twice the cores: the tasks wait on the databases half the time; "
            "BENCH_F_CONCURRENCY changes it), on the same machine as the load and both databases.",
            "Reproduce: `DATABASE_URL=postgres://… REDIS_URL=redis://… make bench-fulfilment`. On this shared "
            "virtual machine absolute times moved by up to 2× between runs minutes apart (the raw queries "
            "alone measured 1.1–2.8 ms); the ratios measured within one run are the stable comparison.",
            "",
            f"### (a) Data gathering for one person, {gather['rounds']} rounds of {gather['runs']}",
            "",
            "The connector's `export` (one read-only transaction, one indexed query per collection) into a sink "
            "that only counts, beside the raw queries for the same rows on a warm psycopg connection, alternated "
            "(each going first every other person).",
            "",
            "| | median ms | p95 ms |",
            "|---|---:|---:|",
            f"| SQL connector ({gather['rows_per_person']:.0f} rows) | {gather['connector_median_ms']:.2f} | "
            f"{gather['connector_p95_ms']:.2f} |",
            f"| raw indexed queries | {gather['raw_median_ms']:.2f} | {gather['raw_p95_ms']:.2f} |",
            "",
            f"Connector vs raw: {ratio:.2f}× over all runs; the ratio of the round medians ranged "
            f"{gather['ratio_min']:.2f}–{gather['ratio_max']:.2f}× (goal ≤3 ms and within 3×). The connector's "
            "extra cost: one read-only REPEATABLE READ transaction (BEGIN and ROLLBACK round trips) for a "
            "consistent snapshot, and SQLAlchemy Core building each row.",
            "",
            f"### (b) One access request end to end, {e2e['runs']} runs (after 5 warm-up runs)",
            "",
            "From `POST /api/v1/staff/requests/{ref}/fulfilment/start/` (token auth, in-process client) to the "
            "worker's result: the person's records gathered and written as encrypted JSON lines; then to the "
            "encrypted access package (ZIP with index.html, JSON, CSV, manifest).",
            "",
            "| to | median ms | p95 ms |",
            "|---|---:|---:|",
            f"| data gathered and written | {e2e['gathered_median_ms']:.1f} | {e2e['gathered_p95_ms']:.1f} |",
            f"| encrypted package built | {e2e['package_median_ms']:.1f} | {e2e['package_p95_ms']:.1f} |",
            "",
            "Goal: median ≤68 ms to the data gathered (Fides 2.78.2: 0.68 s on this kind of machine, "
            "as the issue reports; not re-measured here).",
            "",
            f"### (c) A batch of {batch[0]['requests']} access requests",
            "",
            "Started through the API by one client (one after another), then by four at once (threads, one "
            "connection each); timed until every person's data was gathered and written (what Fides measures), "
            "and until every encrypted package was built. `POSTs done` is when the last start call answered.",
            "",
            "| clients | POSTs done s | gathered s | gathered per minute | packages s | packages per minute |",
            "|---:|---:|---:|---:|---:|---:|",
            *[
                f"| {b['clients']} | {b['posted_seconds']:.2f} | {b['gathered_seconds']:.2f} | "
                f"{b['gathered_per_minute']:,.0f} | {b['seconds']:.2f} | {b['per_minute']:,.0f} |"
                for b in batch
            ],
            "",
            "Goal: ≥1,226 per minute (Fides: 109–123, as the issue reports). "
            + "; ".join(
                f"{b['clients']} client{'s' if b['clients'] > 1 else ''}: data gathered "
                f"{'meets' if b['gathered_per_minute'] >= 1226 else 'misses'} it, packages "
                f"{'meet' if b['per_minute'] >= 1226 else 'miss'} it"
                for b in batch
            )
            + ". With one client the start calls themselves (each a locked transaction, an audit event and "
            "the run's status in the answer) bound the rate.",
            "",
            f"### (d) A person with {big['rows']:,} rows",
            "",
            "Search and package in one process (eager tasks): records streamed from the cursor into the "
            "encrypted result file, and from it into the encrypted ZIP.",
            "",
            "| rows | status | seconds | ZIP bytes | stored (encrypted) bytes | files | RSS before MiB | "
            "peak RSS MiB |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
            f"| {big['rows']:,} | {big['status']} | {big['seconds']:.1f} | {big['zip_bytes']:,} | "
            f"{big['stored_bytes']:,} | {big['files']} | {big['rss_before_mib']:.0f} | {big['rss_peak_mib']:.0f} |",
            "",
            f"### (e) One erasure end to end, {erasure['runs']} runs (after 5 warm-up runs)",
            "",
            "A verified request to delete for a 10-row person: `POST …/fulfilment/start/` until the plan awaits "
            "approval (found, planned by the map's strategies, rehearsed in a rolled-back transaction), then "
            "`POST …/fulfilment/approve/` until the shop is erased and verified (executed in one transaction, "
            "found again). At that moment the shop's two recipients in the shipped map are told to delete what "
            "they received (their owner's tasks and emails, queued in the same transaction and sent by the worker "
            "after it, untimed: each run starts once the previous one's are sent); the run is done once they "
            "confirm, which no bench can do in their place.",
            "",
            "| to | median ms |",
            "|---|---:|",
            f"| plan awaiting approval | {erasure['plan_median_ms']:.1f} |",
            f"| approve → erased and verified | {erasure['execute_median_ms']:.1f} |",
            f"| both (p95 {erasure['total_p95_ms']:.1f}) | {erasure['total_median_ms']:.1f} |",
            "",
            "Goal: median ≤129 ms end to end (Fides 2.78.2: 1.29 s, and not atomic across tables, as the issue "
            "reports).",
            "",
            f"### (f) The erasure of a person with {erase_big['rows']:,} rows",
            "",
            "In one process with eager tasks, like (d): `fulfilment_start` until the plan awaits approval (every "
            "key found, planned, rehearsed in a rolled-back transaction and stored with its digest), then "
            "`erasure_approve` until erased in one transaction and verified by searching again. The orders are "
            "kept for tax law with their shipping name and address nulled; the customer row is masked. The state "
            "is `running` while the recipients told (the column) have not confirmed.",
            "",
            "| state | recipients told | rows | updated | deleted | verified | plan JSON bytes | plan s | "
            "execute + verify s | RSS before MiB | peak RSS planning MiB | peak RSS MiB |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
            f"| {erase_big['state']} | {erase_big['recipients_told']} | {erase_big['rows']:,} | "
            f"{erase_big['updated']:,} | {erase_big['deleted']:,} | "
            f"{'yes' if erase_big['verified'] else 'no'} | {erase_big['plan_json_bytes']:,} | "
            f"{erase_big['plan_seconds']:.1f} | {erase_big['execute_seconds']:.1f} | "
            f"{erase_big['rss_before_mib']:.0f} | {erase_big['rss_plan_peak_mib']:.0f} | "
            f"{erase_big['rss_peak_mib']:.0f} |",
            "",
            f"### (g) A batch of {erase_batch['requests']} erasures",
            "",
            "Started through the API by one client one after another; each plan approved through the API as soon "
            "as it awaited approval; timed until the shop was erased and verified in every one by the real worker "
            "(the recipients told then, as in (e)).",
            "",
            "| erasures | failed | POSTs done s | all approved s | all erased and verified s | per minute |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {erase_batch['requests']} | {erase_batch['failed']} | {erase_batch['posted_seconds']:.2f} | "
            f"{erase_batch['approved_seconds']:.2f} | {erase_batch['seconds']:.2f} | "
            f"{erase_batch['per_minute']:,.0f} |",
            "",
            "Goal: a batch of 100 erasures within a minute: "
            f"{'met' if erase_batch['per_minute'] >= 100 else 'missed'}.",
            "",
            "<!-- /fulfilment -->",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
