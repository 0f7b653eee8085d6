"""The production environment of docker-compose.yml passes `check --deploy` with no warning at all.
The environment is read from the compose file, so the two cannot drift apart."""

import json
import os
import re
import secrets
import subprocess
import sys

import pytest
import yaml

from tests.support import ROOT

# What `docker compose up` is given from outside (README: Production); everything else defaults.
PROVIDED = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DSR_AUDIT_KEY": secrets.token_urlsafe(50),
    "DSR_PACKAGE_KEY": secrets.token_urlsafe(50),
    "DSR_SUPPRESSION_KEY": secrets.token_urlsafe(50),
    "DSR_LEDGER_KEY": secrets.token_urlsafe(50),
    "DSR_ERASURE_HASH_KEY": secrets.token_urlsafe(50),
}
INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def compose_app_environment(provided: dict) -> dict:
    """x-app-env with compose's interpolation: ${V:-default}, ${V-default}, ${V:?error}, ${V}."""
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-app-env"]

    def resolve(match):
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        value = provided.get(name)
        if op.endswith("?"):
            if not value:
                pytest.fail(f"docker-compose.yml requires {name} ({arg}); add it to PROVIDED")
            return value
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        return value or ""

    return {key: INTERPOLATION.sub(resolve, str(value)) for key, value in raw.items()}


def _run(args, tmp_path):
    # The image sets DSR_VAR_DIR (Dockerfile); nothing from this test process leaks in.
    env = {**compose_app_environment(PROVIDED), "PATH": os.environ["PATH"], "DSR_VAR_DIR": str(tmp_path)}
    if os.environ.get("DSR_DEMO_SHOP_DSN"):
        env["DSR_DEMO_SHOP_DSN"] = os.environ["DSR_DEMO_SHOP_DSN"]
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_under_the_compose_production_environment(tmp_path, monkeypatch):
    # The data map's guard inspects the map (at /app in the image: the checkout here) and the shop's
    # database, which a deployment provides: a demo shop stands in for it.
    from sqlalchemy import create_engine

    from dsr.fulfilment.demo_shop import demo_shop_create

    shop = tmp_path / "shop.sqlite3"
    engine = create_engine(f"sqlite:///{shop}")
    demo_shop_create(engine)
    engine.dispose()
    monkeypatch.setitem(PROVIDED, "DSR_DATAMAP", str(ROOT / "config" / "datamap.yaml"))
    monkeypatch.setenv("DSR_DEMO_SHOP_DSN", f"sqlite:///{shop}")
    result = _run(["check", "--deploy", "--fail-level", "WARNING"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout, result.stdout + result.stderr
    assert "WARNING" not in result.stderr and "WARNINGS" not in result.stdout


def test_the_compose_environment_turns_on_https_only_behaviour(tmp_path):
    names = [
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_PROXY_SSL_HEADER",
        "DEBUG",
    ]
    code = f"import json; from django.conf import settings; print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}))"
    result = _run(["shell", "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "DEBUG": False,
    }


def test_production_refuses_to_start_without_the_audit_key(tmp_path):
    env = {**compose_app_environment(PROVIDED), "PATH": os.environ["PATH"], "DSR_VAR_DIR": str(tmp_path)}
    del env["DSR_AUDIT_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "DSR_AUDIT_KEY must be set in production" in result.stderr
    assert not (tmp_path / "audit_key").exists()
