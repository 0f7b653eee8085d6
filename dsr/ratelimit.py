"""Fixed-window rate limits kept in the cache (Redis in production), by scope and key."""

import hashlib
import time

from django.conf import settings
from django.core.cache import cache

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def _parse(rate: str) -> tuple[int, int]:
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period]


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
    cache.add(cache_key, 0, timeout=window + 5)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=window + 5)
        count = 1
    if count > limit:
        return max(1, start + window - now)
    return None


def client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "")
