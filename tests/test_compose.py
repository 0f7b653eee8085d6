"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine runs here)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _command(service) -> str:
    command = service["command"]
    return command if isinstance(command, str) else " ".join(command)


def test_services_exist():
    assert set(_compose()["services"]) == {"web", "worker", "beat", "postgres", "redis", "mailpit"}


def test_app_services_share_one_image_and_environment():
    services = _compose()["services"]
    app = [services[name] for name in ("web", "worker", "beat")]
    assert len({(s["build"], s["image"]) for s in app}) == 1
    env = app[0]["environment"]
    assert all(s["environment"] == env for s in app)
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    assert env["DSR_SMTP_URL"] == "smtp://mailpit:1025"
    assert env["DSR_REQUIRE_SECRET_KEY"] == "1"


def test_commands():
    services = _compose()["services"]
    assert "gunicorn config.wsgi:application" in _command(services["web"])
    assert "migrate" in _command(services["web"])
    assert _command(services["worker"]).startswith("celery -A config worker")
    assert _command(services["beat"]).startswith("celery -A config beat")


def test_dependencies_wait_for_healthy_services():
    services = _compose()["services"]
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]


def test_dockerfile_runs_gunicorn_as_a_non_root_user():
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11" in text
    assert "pip install --no-cache-dir -r requirements.txt" in text
    assert "USER dsr" in text
    cmd = [line for line in text.splitlines() if line.startswith("CMD")][0]
    assert "gunicorn" in cmd and "config.wsgi:application" in cmd
