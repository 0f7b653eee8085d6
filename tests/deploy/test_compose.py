"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine runs here)."""

import yaml

from tests.support import ROOT


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _command(service) -> str:
    command = service["command"]
    return command if isinstance(command, str) else " ".join(command)


def test_services_exist():
    assert set(_compose()["services"]) == {"migrate", "web", "worker", "beat", "postgres", "redis", "mailpit"}


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
    assert "migrate --noinput" in _command(services["migrate"])
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


def test_a_migration_role_owns_the_tables_and_the_app_connects_as_a_role_that_does_not():
    """The app's role cannot alter or drop the append-only trigger (tests/audit/test_db_roles.py proves
    it on PostgreSQL); here: the compose file wires the two roles that way."""
    from urllib.parse import urlsplit

    services = _compose()["services"]
    owner = urlsplit(services["migrate"]["environment"]["DATABASE_URL"]).username
    app = urlsplit(services["web"]["environment"]["DATABASE_URL"]).username
    assert (owner, app) == ("dsr", "dsr_app")
    assert _command(services["migrate"]).rstrip('"').endswith(f"&& python manage.py dsr_db_grant {app}")
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "migrate" not in _command(services[name])
    assert services["postgres"]["environment"]["POSTGRES_USER"] == "postgres"  # the superuser is neither
    mount = [v for v in services["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v][0]
    script = (ROOT / mount.split(":")[0]).read_text()
    assert f"CREATE ROLE {owner} LOGIN" in script and f"CREATE ROLE {app} LOGIN" in script
    assert "SUPERUSER" not in script and f"ALTER DATABASE dsr OWNER TO {owner}" in script


def test_audit_checkpoints_live_on_their_own_volume():
    services = _compose()["services"]
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert f"auditcheckpoints:{env['DSR_AUDIT_CHECKPOINT_DIR']}" in services[name]["volumes"]
        assert env["DSR_AUDIT_KEY"].startswith("${DSR_AUDIT_KEY:?")
        assert env["DSR_PACKAGE_KEY"].startswith("${DSR_PACKAGE_KEY:?")
        assert env["DSR_SUPPRESSION_KEY"].startswith("${DSR_SUPPRESSION_KEY:?")
        assert env["DSR_LEDGER_KEY"].startswith("${DSR_LEDGER_KEY:?")
        assert env["DSR_ERASURE_HASH_KEY"].startswith("${DSR_ERASURE_HASH_KEY:?")
