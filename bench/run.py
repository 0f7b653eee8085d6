"""Benchmarks: public intake through the real stack, and the deadline sweep at 10,000 and
1,000,000 open requests. Prints a table and writes bench/RESULTS.md.

    make bench                       # SQLite under bench/work/ (run mode)
    DATABASE_URL=postgres://... make bench

Sizes can be changed for a quick look: BENCH_SWEEP_SIZES=1000,10000 BENCH_INTAKE_REQUESTS=200.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "RESULTS.md"
INTAKE_REQUESTS = int(os.environ.get("BENCH_INTAKE_REQUESTS", "1000"))
INTAKE_CLIENTS = int(os.environ.get("BENCH_INTAKE_CLIENTS", "8"))
SWEEP_SIZES = [int(x) for x in os.environ.get("BENCH_SWEEP_SIZES", "10000,1000000").split(",")]
SWEEP_DUE = int(os.environ.get("BENCH_SWEEP_DUE", "100"))
DASHBOARD_SIZES = [int(x) for x in os.environ.get("BENCH_DASHBOARD_SIZES", "1000,100000").split(",")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(var_dir: Path) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.run",
        DSR_VAR_DIR=str(var_dir),
        DSR_INTAKE_RATE="100000000/hour",
        DJANGO_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def var_init(env: dict) -> None:
    """Keys and broker folders in the run's var/, as `make run` prepares them."""
    subprocess.run([sys.executable, "-m", "config.var_init"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


# --- Intake ---------------------------------------------------------------------------------------


def bench_intake() -> dict:
    var_dir = WORK / "intake"
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    env = base_env(var_dir)
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    var_init(env)
    manage(env, "migrate", "--noinput")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--threads", "4", "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        per_client = INTAKE_REQUESTS // INTAKE_CLIENTS

        def client(n: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for i in range(per_client):
                body = json.dumps({"type": "access", "regime": "gdpr" if i % 2 else "ccpa",
                                   "email": f"bench{n}-{i}@example.org", "full_name": "Bench Person"})
                start = time.perf_counter()
                conn.request("POST", "/api/v1/requests/", body=body, headers={"Content-Type": "application/json"})
                res = conn.getresponse()
                res.read()
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    if res.status != 201:
                        errors.append(str(res.status))
            conn.close()

        # Warm up both gunicorn workers before measuring.
        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(10):
            warm.request("GET", "/")
            warm.getresponse().read()
        warm.close()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(INTAKE_CLIENTS)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "seconds": wall,
        "rps": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
    }


# --- Sweep ----------------------------------------------------------------------------------------


def sweep_worker(size: int, var_dir: Path) -> dict:
    """Runs in a child process with its own database: fill, then time the sweeps."""
    import django

    django.setup()
    from django.db import connection, transaction
    from django.utils import timezone

    from dsr.models import DataSubjectRequest, Status
    from dsr.services.sweep import deadline_sweep

    today = date(2026, 6, 1)
    far = today + timedelta(days=400)
    received = timezone.make_aware(datetime(2026, 5, 20, 12, 0))
    fill_start = time.perf_counter()
    batch = 10_000
    made = 0
    while made < size:
        rows = []
        for i in range(made, min(size, made + batch)):
            due_now = i < SWEEP_DUE
            respond_by = today + timedelta(days=7) if due_now else far
            rows.append(
                DataSubjectRequest(
                    reference=f"DSR-2026-{i + 1:07d}",
                    public_token=f"bench-token-{i:09d}",
                    request_type="access",
                    regime="ccpa",
                    channel="web",
                    language="en",
                    status=Status.IN_PROGRESS,
                    email=f"p{i}@example.org",
                    full_name="Bench Person",
                    received_at=received,
                    original_respond_by=respond_by,
                    respond_by=respond_by,
                    remind_on=respond_by - timedelta(days=7),
                    overdue_on=respond_by + timedelta(days=1),
                )
            )
        with transaction.atomic():
            DataSubjectRequest.objects.bulk_create(rows, batch_size=2000)
        made += len(rows)
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("ANALYZE dsr_datasubjectrequest")
    fill_seconds = time.perf_counter() - fill_start

    timings = {}
    start = time.perf_counter()
    report = deadline_sweep(today=today)
    timings["sweep_due_s"] = time.perf_counter() - start
    timings["fired"] = len(report.fired)
    start = time.perf_counter()
    report = deadline_sweep(today=today)
    timings["sweep_again_s"] = time.perf_counter() - start
    timings["fired_again"] = len(report.fired)
    timings["open"] = DataSubjectRequest.objects.filter(status=Status.IN_PROGRESS).count()
    timings["fill_s"] = fill_seconds
    timings["db"] = connection.vendor
    return timings


def _in_fresh_database(kind: str, size: int, extra_env: dict | None = None) -> dict:
    """Run this file's `--<kind>-worker` in a child process with a database of its own (a fresh
    SQLite file, or a PostgreSQL database created next to DATABASE_URL's), migrated first."""
    var_dir = WORK / f"{kind}-{size}"
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    env = {**base_env(var_dir), **(extra_env or {})}
    if os.environ.get("DATABASE_URL"):
        name = f"dsr_bench_{kind}_{size}"
        env["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}"
        _pg_recreate(os.environ["DATABASE_URL"], name)
    var_init(env)
    manage(env, "migrate", "--noinput")
    out = subprocess.run(
        [sys.executable, __file__, f"--{kind}-worker", str(size), str(var_dir)],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_sweep(size: int) -> dict:
    return _in_fresh_database("sweep", size)


def _pg_recreate(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


# --- Dashboard pages ------------------------------------------------------------------------------


def dashboard_worker(size: int) -> dict:
    """Fill a database of its own with `size` requests spread over the last year, then time the
    queue and the report pages through Django's full request handling (middleware, templates)."""
    import random

    import django

    django.setup()
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from dsr.models import DataSubjectRequest
    from dsr.deadlines import deadlines_for
    from tests.factories import officer_create

    rng = random.Random(7)
    types = ["access", "access_specific", "erasure", "rectification", "opt_out_sale", "limit_sensitive", "objection"]
    statuses = ["awaiting_verification", "verified", "in_progress", "completed", "completed", "denied", "cancelled"]
    officer = officer_create(username="bench-officer", email="bench-officer@example.org")
    now = timezone.now()
    made = 0
    while made < size:
        rows = []
        for i in range(made, min(size, made + 5000)):
            received = now - timedelta(days=rng.randint(0, 364), minutes=rng.randint(0, 1440))
            request_type, regime = rng.choice(types), rng.choice(["ccpa", "gdpr"])
            d = deadlines_for(regime=regime, request_type=request_type, received_on=received.date())
            status = rng.choice(statuses)
            closed = status in ("completed", "denied", "cancelled")
            rows.append(DataSubjectRequest(
                reference=f"DSR-2026-{i + 1:07d}", public_token=f"bench-{i:09d}", request_type=request_type, regime=regime,
                status=status, email=f"p{i}@example.org", full_name=f"Person {i}", received_at=received,
                acknowledge_by=d.acknowledge_by, original_respond_by=d.original_respond_by, respond_by=d.respond_by,
                closed_at=received + timedelta(days=rng.randint(1, 40)) if closed else None,
                outcome={"completed": "complied", "denied": "denied", "cancelled": "cancelled"}.get(status, ""),
                denial_reason="unverifiable" if status == "denied" else "",
                assignee=officer if i % 3 == 0 else None,
            ))
        with transaction.atomic():
            DataSubjectRequest.objects.bulk_create(rows, batch_size=2000)
        made += len(rows)
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
    client = Client()
    client.force_login(officer)
    pages = {
        "queue": "/dashboard/",
        "queue, overdue filter": "/dashboard/?overdue=on",
        "queue, search": "/dashboard/?q=p4242@example.org",
        "reports": f"/dashboard/reports/?year={now.year}",
    }
    results = {}
    for name, url in pages.items():
        client.get(url)  # warm
        times = []
        for _ in range(5):
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - start)
            assert response.status_code == 200, (url, response.status_code)
        results[name] = {"median_ms": 1000 * statistics.median(times), "queries": len(queries.captured_queries)}
    return results


def bench_dashboard(size: int) -> dict:
    return _in_fresh_database("dashboard", size, {"DSR_REQUIRE_2FA": "0"})


# --- Report ---------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}; {platform.system()} {platform.release()}; Python {platform.python_version()}"


def results_section_write(key: str, section: str) -> None:
    """RESULTS.md keeps one section per database; a run replaces only its own."""
    header = "# Benchmark results\n\nEach section is rewritten by `make bench` on that database (`DATABASE_URL` unset: SQLite).\n"
    text = RESULTS.read_text() if RESULTS.exists() else header
    start, end = f"<!-- {key} -->", f"<!-- /{key} -->"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    db = "PostgreSQL (DATABASE_URL)" if os.environ.get("DATABASE_URL") else "SQLite (WAL), run mode"
    print(f"Benchmarks on {db}")
    intake = bench_intake()
    print(f"intake: {intake['rps']:.0f} requests/s over {intake['requests']} requests, "
          f"p50 {intake['p50_ms']:.1f} ms, p95 {intake['p95_ms']:.1f} ms, errors {intake['errors']}")
    sweeps = []
    for size in SWEEP_SIZES:
        result = bench_sweep(size)
        sweeps.append((size, result))
        print(f"sweep over {size:,} open requests: {result['fired']} timers fired in {result['sweep_due_s'] * 1000:.0f} ms; "
              f"nothing due: {result['sweep_again_s'] * 1000:.1f} ms (fill {result['fill_s']:.0f} s)")
    dashboards = []
    for size in DASHBOARD_SIZES:
        result = bench_dashboard(size)
        dashboards.append((size, result))
        for page, r in result.items():
            print(f"dashboard {page} with {size:,} requests: {r['median_ms']:.0f} ms, {r['queries']} queries")
    key = "postgresql" if os.environ.get("DATABASE_URL") else "sqlite"
    lines = [
        f"<!-- {key} -->",
        f"## {db}",
        "",
        f"Written by `make bench` on {date.today().isoformat()}.",
        f"Machine: {machine()}.",
        f"Database: {db}.",
        "",
        "### Public intake through the real stack",
        "",
        f"gunicorn (2 workers × 4 threads) → DRF → `request_submit` (reference, clock, audit event, outbox row) → "
        f"Celery publish on commit; {INTAKE_CLIENTS} keep-alive clients on loopback.",
        "",
        "| requests | errors | seconds | requests/s | p50 ms | p95 ms |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {intake['requests']} | {intake['errors']} | {intake['seconds']:.1f} | {intake['rps']:.0f} | "
        f"{intake['p50_ms']:.1f} | {intake['p95_ms']:.1f} |",
        "",
        "### Deadline sweep",
        "",
        f"{SWEEP_DUE} requests have a reminder due; the rest are open with deadlines far ahead. "
        "First sweep: fires the due reminders (event + staff email each). Second sweep: nothing due.",
        "",
        "| open requests | timers fired | first sweep ms | second sweep ms |",
        "|---:|---:|---:|---:|",
    ]
    for size, r in sweeps:
        lines.append(f"| {size:,} | {r['fired']} | {r['sweep_due_s'] * 1000:.0f} | {r['sweep_again_s'] * 1000:.1f} |")
    if len(sweeps) >= 2:
        (s1, r1), (s2, r2) = sweeps[0], sweeps[-1]
        ratio = r2["sweep_due_s"] / r1["sweep_due_s"]
        lines += ["", f"Time ratio {s2:,} vs {s1:,} open requests: {ratio:.2f}× for {s2 // s1}× the rows."]
        print(f"sweep time ratio {s2:,}/{s1:,}: {ratio:.2f}x")
    if dashboards:
        lines += ["", "### Dashboard pages", "",
                  "Requests spread over the last year, all statuses; the page rendered through Django's full request "
                  "handling (middleware, templates), median of 5 after a warm-up.", "",
                  "| page | " + " | ".join(f"{s:,} requests: ms (queries)" for s, _ in dashboards) + " | time ratio |",
                  "|---|" + "---:|" * (len(dashboards) + 1)]
        for page in dashboards[0][1]:
            cells = [f"{r[page]['median_ms']:.0f} ({r[page]['queries']})" for _, r in dashboards]
            ratio = dashboards[-1][1][page]["median_ms"] / dashboards[0][1][page]["median_ms"]
            lines.append(f"| {page} | " + " | ".join(cells) + f" | {ratio:.2f}× |")
    lines.append(f"<!-- /{key} -->")
    results_section_write(key, "\n".join(lines))
    print(f"written {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--dashboard-worker":
        sys.path.insert(0, str(ROOT))
        print(json.dumps(dashboard_worker(int(sys.argv[2]))))
    elif len(sys.argv) == 4 and sys.argv[1] == "--sweep-worker":
        sys.path.insert(0, str(ROOT))
        print(json.dumps(sweep_worker(int(sys.argv[2]), Path(sys.argv[3]))))
    else:
        main()
