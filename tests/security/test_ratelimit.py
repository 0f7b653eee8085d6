"""Rate limits: counted in the shared cache, and still counted (per process) when it is down."""

from dsr.ratelimit import rate_limit_hit
from tests.support.services import free_port


def test_limit_counts_and_refuses_over_the_rate(settings):
    settings.DSR_RATE_LIMITS = {"form_ip": "3/hour"}
    assert [rate_limit_hit(scope="form_ip", key="203.0.113.9") for _ in range(3)] == [None, None, None]
    wait = rate_limit_hit(scope="form_ip", key="203.0.113.9")
    assert wait is not None and 0 < wait <= 3600
    assert rate_limit_hit(scope="form_ip", key="203.0.113.10") is None  # another key, its own count


def test_unreachable_cache_still_limits_instead_of_raising(settings, cache_unreachable):
    settings.DSR_RATE_LIMITS = {"login_ip": "2/hour"}
    key = f"198.51.100.{free_port() % 250}"
    assert rate_limit_hit(scope="login_ip", key=key) is None
    assert rate_limit_hit(scope="login_ip", key=key) is None
    assert rate_limit_hit(scope="login_ip", key=key) is not None


class _HungCache:
    """Stands in for a Redis that times out: every call fails, and is counted."""

    def __init__(self):
        self.calls = 0

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls += 1
            raise TimeoutError("timed out")

        return call


def test_after_a_failure_the_shared_cache_is_left_alone_for_a_while(settings, monkeypatch):
    from dsr import ratelimit

    hung = _HungCache()
    monkeypatch.setattr(ratelimit, "cache", hung)
    settings.DSR_RATE_LIMITS = {"form_ip": "3/hour"}
    assert rate_limit_hit(scope="form_ip", key="192.0.2.7") is None
    tried = hung.calls
    assert tried == 1  # the first call failed: the shared cache is not tried again for this check
    # Each further check would have cost a socket timeout; they count in memory instead, and still limit.
    assert [rate_limit_hit(scope="form_ip", key="192.0.2.7") for _ in range(3)][-1] is not None
    assert hung.calls == tried
    monkeypatch.setattr(ratelimit, "_shared_paused_until", 0.0)  # the pause is over
    rate_limit_hit(scope="form_ip", key="192.0.2.8")
    assert hung.calls > tried
