"""Helpers shared by the tests; the fixtures built on them are in tests/conftest.py."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the project's folder, wherever a test module sits
