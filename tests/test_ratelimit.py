"""Rate limits: counted in the shared cache, and still counted (per process) when it is down."""

import socket

import pytest

from dsr.ratelimit import rate_limit_hit


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_limit_counts_and_refuses_over_the_rate(settings):
    settings.DSR_RATE_LIMITS = {"form_ip": "3/hour"}
    assert [rate_limit_hit(scope="form_ip", key="203.0.113.9") for _ in range(3)] == [None, None, None]
    wait = rate_limit_hit(scope="form_ip", key="203.0.113.9")
    assert wait is not None and 0 < wait <= 3600
    assert rate_limit_hit(scope="form_ip", key="203.0.113.10") is None  # another key, its own count


def test_unreachable_cache_still_limits_instead_of_raising(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    from django.core.cache import cache

    with pytest.raises(Exception):
        cache.get("anything")  # the shared cache really is down
    settings.DSR_RATE_LIMITS = {"login_ip": "2/hour"}
    key = f"198.51.100.{_closed_port() % 250}"
    assert rate_limit_hit(scope="login_ip", key=key) is None
    assert rate_limit_hit(scope="login_ip", key=key) is None
    assert rate_limit_hit(scope="login_ip", key=key) is not None
