"""Intake takes no lock that another intake waits on (issue 12): on real PostgreSQL, while one
submission's transaction is still open, another submission in its own connection commits at
once (with a lock timeout that would fail it if it waited), and both references are unique."""

import threading

import pytest
from django.db import connection, connections, transaction

from dsr.models import DataSubjectRequest
from tests.factories import request_create

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_second_intake_does_not_wait_for_the_first_to_commit():
    first_inside = threading.Event()
    release_first = threading.Event()
    results: dict[str, object] = {}

    def first():
        try:
            with transaction.atomic():
                results["first"] = request_create(email="first@example.org").reference
                first_inside.set()
                release_first.wait(timeout=20)
        except Exception as error:  # pragma: no cover - reported below
            results["first_error"] = error
        finally:
            first_inside.set()
            connections.close_all()

    def second():
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '2s'")  # waiting on a lock fails it
                results["second"] = request_create(email="second@example.org").reference
        except Exception as error:
            results["second_error"] = error
        finally:
            connections.close_all()

    one = threading.Thread(target=first)
    one.start()
    assert first_inside.wait(timeout=20)
    two = threading.Thread(target=second)
    two.start()
    two.join(timeout=20)
    second_done_while_first_open = not two.is_alive() and not release_first.is_set()
    release_first.set()
    one.join(timeout=20)
    assert "second_error" not in results, results.get("second_error")
    assert "first_error" not in results, results.get("first_error")
    assert second_done_while_first_open
    assert results["first"] != results["second"]
    assert DataSubjectRequest.objects.filter(reference__in=[results["first"], results["second"]]).count() == 2
