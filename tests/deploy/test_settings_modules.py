"""Settings by environment (config/settings/): loading any of them writes nothing; production takes
its keys from the environment and nowhere else; run mode reads the keys `python -m config.var_init`
wrote; each entry point picks its module; every Celery task has a soft and a hard time limit."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT

KEYS = {
    "DJANGO_SECRET_KEY": "environment-secret-key-" + "s" * 40,
    "DSR_AUDIT_KEY": "environment-audit-key",
    "DSR_PACKAGE_KEY": "environment-package-key",
    "DSR_SUPPRESSION_KEY": "environment-suppression-key",
    "DSR_LEDGER_KEY": "environment-ledger-key",
    "DSR_ERASURE_HASH_KEY": "environment-erasure-hash-key",
}
# Loads the settings and everything that reads them at import: the apps, the URLs, the Celery app
# and its tasks (dsr.tasks reads the email lease). Not the system checks, which a worker and
# `manage.py check` run: they open the file cache, which makes its folder (config.var_init makes it
# beforehand in run mode).
LOAD = """
import json, django
django.setup()
from django.conf import settings
from django.urls import get_resolver
get_resolver().url_patterns
from config.celery_app import app
import dsr.tasks
tasks = {name: [t.soft_time_limit, t.time_limit] for name, t in app.tasks.items() if name.startswith("dsr.")}
print(json.dumps({
    "module": settings.SETTINGS_MODULE, "secret_key": settings.SECRET_KEY, "audit_keys": settings.DSR_AUDIT_KEYS,
    "require_2fa": settings.DSR_REQUIRE_2FA, "broker": app.conf.broker_url,
    "transport": app.conf.broker_transport_options, "soft": app.conf.task_soft_time_limit,
    "hard": app.conf.task_time_limit, "tasks": tasks, "lease": settings.DSR_EMAIL_LEASE_SECONDS,
}))
"""


def _env(var_dir: Path, **extra) -> dict:
    """Nothing from this process leaks in (no DATABASE_URL, REDIS_URL or settings module of the suite's)."""
    return {"PATH": os.environ["PATH"], "DSR_VAR_DIR": str(var_dir), **extra}


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _load(env: dict) -> dict:
    result = _python(LOAD, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _var_init(env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "config.var_init"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("module", ["run", "production", "test"])
def test_loading_the_settings_writes_nothing(tmp_path, module):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    loaded = _load(_env(var_dir, DJANGO_SETTINGS_MODULE=f"config.settings.{module}", **KEYS))
    assert loaded["module"] == f"config.settings.{module}"
    assert _tree(tmp_path) == ["var"]


def test_the_shared_settings_load_alone_and_write_nothing(tmp_path):
    result = _python("import config.settings.base", _env(tmp_path / "var"))
    assert result.returncode == 0, result.stderr
    assert _tree(tmp_path) == []


def test_run_mode_without_keys_says_how_to_make_them_and_writes_nothing(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    result = _python(LOAD, _env(var_dir, DJANGO_SETTINGS_MODULE="config.settings.run"))
    assert result.returncode != 0
    assert f"DJANGO_SECRET_KEY is not set and {var_dir / 'secret_key'} holds no key" in result.stderr
    assert "python -m config.var_init" in result.stderr
    assert _tree(tmp_path) == ["var"]


def test_production_refuses_to_start_without_each_key_even_with_key_files_or_debug(tmp_path):
    var_dir = tmp_path / "var"
    _var_init(_env(var_dir))  # key files run mode would read: production must not
    before = {name: (var_dir / name).read_text() for name in ("secret_key", "audit_key")}
    for missing in (
        "DJANGO_SECRET_KEY",
        "DSR_AUDIT_KEY",
        "DSR_PACKAGE_KEY",
        "DSR_SUPPRESSION_KEY",
        "DSR_LEDGER_KEY",
        "DSR_ERASURE_HASH_KEY",
    ):
        for debug in ("0", "1"):
            env = _env(var_dir, DJANGO_SETTINGS_MODULE="config.settings.production", DJANGO_DEBUG=debug, **KEYS)
            del env[missing]
            result = subprocess.run(
                [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
            )
            assert result.returncode != 0, (missing, debug)
            assert f"{missing} must be set in production" in result.stderr, result.stderr
    assert {name: (var_dir / name).read_text() for name in before} == before


def test_production_takes_the_keys_from_the_environment(tmp_path):
    loaded = _load(
        _env(
            tmp_path / "var",
            DJANGO_SETTINGS_MODULE="config.settings.production",
            **KEYS,
            DSR_AUDIT_KEY_ID="7",
            DSR_AUDIT_RETIRED_KEYS="6:old-key",
        )
    )
    assert loaded["secret_key"] == KEYS["DJANGO_SECRET_KEY"]
    assert loaded["audit_keys"] == {"6": "old-key", "7": KEYS["DSR_AUDIT_KEY"]}
    assert loaded["require_2fa"] is True


def test_var_init_writes_once_what_run_mode_reads(tmp_path):
    var_dir = tmp_path / "var"
    env = _env(var_dir)
    first = _var_init(env)
    assert _tree(tmp_path) == [
        "var",
        "var/audit_key",
        "var/cache",
        "var/celery",
        "var/celery/control",
        "var/celery/queue",
        "var/mail",
        "var/package_key",
        "var/secret_key",
        "var/suppression_key",
    ]
    assert "var/secret_key" in first.stdout and "var/audit_key" in first.stdout
    keys = {
        name: (var_dir / name).read_text() for name in ("secret_key", "audit_key", "package_key", "suppression_key")
    }
    for name, key in keys.items():
        assert len(key) >= 50 and stat.S_IMODE((var_dir / name).stat().st_mode) == 0o600
    assert len(set(keys.values())) == 4
    # Again: nothing new, the same keys (links in sent mail and the audit chains depend on them).
    assert _var_init(env).stdout == ""
    assert {name: (var_dir / name).read_text() for name in keys} == keys
    loaded = _load({**env, "DJANGO_SETTINGS_MODULE": "config.settings.run"})
    assert loaded["secret_key"] == keys["secret_key"]
    assert loaded["audit_keys"] == {"1": keys["audit_key"]}
    assert loaded["require_2fa"] is False  # the demo signs in without an authenticator app
    assert loaded["broker"] == "filesystem://"
    assert {Path(loaded["transport"][k]) for k in ("data_folder_in", "data_folder_out", "control_folder")} == {
        var_dir / "celery" / "queue",
        var_dir / "celery" / "control",
    }
    # An empty key file (an interrupted write) is replaced, never read as a key.
    (var_dir / "audit_key").write_text("")
    result = _python(LOAD, {**env, "DJANGO_SETTINGS_MODULE": "config.settings.run"})
    assert result.returncode != 0 and "DSR_AUDIT_KEY is not set" in result.stderr
    _var_init(env)
    assert len((var_dir / "audit_key").read_text()) >= 50


def test_keys_in_the_environment_win_and_var_init_writes_none_for_them(tmp_path):
    var_dir = tmp_path / "var"
    env = _env(var_dir, **KEYS)
    _var_init(env)
    assert not (var_dir / "secret_key").exists() and not (var_dir / "audit_key").exists()
    assert not (var_dir / "package_key").exists() and not (var_dir / "suppression_key").exists()
    loaded = _load({**env, "DJANGO_SETTINGS_MODULE": "config.settings.run", "DSR_REQUIRE_2FA": "1"})
    assert loaded["secret_key"] == KEYS["DJANGO_SECRET_KEY"]
    assert loaded["audit_keys"] == {"1": KEYS["DSR_AUDIT_KEY"]}
    assert loaded["require_2fa"] is True


def test_run_mode_can_still_insist_on_keys_from_the_environment(tmp_path):
    var_dir = tmp_path / "var"
    _var_init(_env(var_dir))
    env = _env(var_dir, DJANGO_SETTINGS_MODULE="config.settings.run", DSR_REQUIRE_SECRET_KEY="1")
    result = _python(LOAD, env)
    assert result.returncode != 0 and "DJANGO_SECRET_KEY must be set in production" in result.stderr
    result = _python(LOAD, {**env, "DJANGO_SECRET_KEY": KEYS["DJANGO_SECRET_KEY"]})
    assert result.returncode != 0 and "DSR_AUDIT_KEY must be set in production" in result.stderr


def test_each_entry_point_picks_its_settings_module(tmp_path):
    env = _env(tmp_path / "var", **KEYS)  # no DJANGO_SETTINGS_MODULE: each file's own default
    show = "from django.conf import settings; print(settings.SETTINGS_MODULE)"
    shell = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", show],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.strip().splitlines()[-1] == "config.settings.run"
    for code in (f"import config.wsgi; {show}", f"import config.celery_app, django; django.setup(); {show}"):
        result = _python(code, env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "config.settings.production"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "DJANGO_SETTINGS_MODULE=config.settings.production" in [
        word for line in dockerfile.splitlines() if line.startswith("ENV ") for word in line.split()
    ]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("migrate", "web", "worker", "beat"):
        assert compose["services"][name]["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert (
        os.environ["DJANGO_SETTINGS_MODULE"] == "config.settings.test"
    )  # make test forces it, whatever the shell says


@pytest.mark.parametrize("lease", [None, "60", "600"])
def test_every_task_has_a_soft_and_a_hard_time_limit_and_a_send_ends_within_its_lease(tmp_path, lease):
    extra = {"DSR_EMAIL_LEASE_SECONDS": lease} if lease else {}
    loaded = _load(
        _env(
            tmp_path / "var",
            DJANGO_SETTINGS_MODULE="config.settings.production",
            **KEYS,
            REDIS_URL="redis://127.0.0.1:1/0",
            **extra,
        )
    )
    visibility = loaded["transport"]["visibility_timeout"]
    assert len(loaded["tasks"]) >= 5
    for name, (task_soft, task_hard) in loaded["tasks"].items():
        soft, hard = task_soft or loaded["soft"], task_hard or loaded["hard"]
        assert soft and hard and soft < hard, name
        # Still running at the broker's visibility timeout, a task would be handed to a second worker.
        assert hard < visibility, name
    soft, hard = loaded["tasks"]["dsr.tasks.email_send"]
    assert soft < hard < loaded["lease"] == int(lease or 180)
