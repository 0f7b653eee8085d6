"""Shared fixtures for fulfilment's tests: private files under the test's own folder, and a
verified request ready to be searched for."""

import pytest

from dsr.services.audit import Actor
from dsr.services.staff_actions import request_verify
from tests.factories import request_create


@pytest.fixture(autouse=True)
def _private_files(settings, tmp_path):
    settings.DSR_PRIVATE_FILES_DIR = tmp_path / "private"


def verified_request(*, officer, request_type: str = "access_specific", email: str = "bench1@example.com", **kwargs):
    """A request verified by staff (the requester's checks are tested elsewhere)."""
    created = request_create(request_type=request_type, email=email, **kwargs)
    return request_verify(request=created, actor=Actor.staff(officer), note="checked in tests")
