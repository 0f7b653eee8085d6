"""Fixed-window rate limits kept in the cache (Redis in production), by scope and key.

When the shared cache cannot be reached (Redis down), a limit is not a reason to refuse a
privacy request or a sign-in: counting moves to this process's memory until the cache answers
again, so the limits still hold per process instead of failing open or failing every request."""

import hashlib
import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache

log = logging.getLogger(__name__)

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

# Used only while the shared cache is unreachable.
_local_counts = LocMemCache("dsr-ratelimit-fallback", {"MAX_ENTRIES": 100_000})


def _parse(rate: str) -> tuple[int, int]:
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period]


def _count(store, cache_key: str, timeout: int) -> int:
    store.add(cache_key, 0, timeout=timeout)
    try:
        return store.incr(cache_key)
    except ValueError:  # expired between add and incr
        store.set(cache_key, 1, timeout=timeout)
        return 1


def _count_safely(cache_key: str, timeout: int) -> int:
    try:
        return _count(cache, cache_key, timeout)
    except Exception as exc:  # the cache backend's own connection errors (redis.ConnectionError, OSError, …)
        log.warning("rate-limit cache unavailable (%s: %s); counting in this process", type(exc).__name__, exc)
        return _count(_local_counts, cache_key, timeout)


def rate_limit_hit(*, scope: str, key: str) -> int | None:
    """Count one attempt; when over the limit, return the seconds until the window ends."""
    rate = settings.DSR_RATE_LIMITS.get(scope)
    if not rate or not key:
        return None
    limit, window = _parse(rate)
    now = int(time.time())
    start = now - now % window
    digest = hashlib.sha256(key.lower().encode()).hexdigest()[:32]
    cache_key = f"dsr-rl:{scope}:{limit}/{window}:{digest}:{start}"
    count = _count_safely(cache_key, window + 5)
    if count > limit:
        return max(1, start + window - now)
    return None


def client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "")
