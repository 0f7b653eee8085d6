"""Fulfilment's home: an installed Django app of its own (label, migrations, tables)."""

import importlib
import io
from pathlib import Path

from django.apps import apps
from django.core.management import call_command


def test_fulfilment_is_an_installed_app_of_its_own():
    config = apps.get_app_config("fulfilment")
    assert config.name == "dsr.fulfilment" and config.label == "fulfilment"
    assert config.label != apps.get_app_config("dsr").label
    models = list(config.get_models())
    assert models and all(
        m._meta.app_label == "fulfilment" and m._meta.db_table.startswith("fulfilment_") for m in models
    )
    assert (Path(config.path) / "migrations" / "__init__.py").is_file()
    assert importlib.import_module("dsr.fulfilment.services")


def test_its_migrations_are_up_to_date(db):
    out = io.StringIO()
    call_command("makemigrations", "fulfilment", "--check", "--dry-run", stdout=out)  # exits 1 if not
    assert "No changes detected" in out.getvalue()
