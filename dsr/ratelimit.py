"""Fixed-window rate limits kept in the cache (Redis in production), by scope and key, and the one
function that decides which client a request comes from (every limit keyed on the client uses it).

When the shared cache cannot be reached (Redis down), a limit is not a reason to refuse a
privacy request or a sign-in: counting moves to this process's memory until the cache answers
again, so the limits still hold per process instead of failing open or failing every request."""

import functools
import hashlib
import ipaddress
import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured

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


# After a failure the shared cache is left alone this long: a hung Redis (one that accepts
# connections and never answers) would otherwise cost every limit check its socket timeout.
SHARED_CACHE_PAUSE_SECONDS = 15
_shared_paused_until = 0.0


def _store():
    return _local_counts if time.monotonic() < _shared_paused_until else cache


def _unavailable(exc: Exception) -> None:
    global _shared_paused_until
    _shared_paused_until = time.monotonic() + SHARED_CACHE_PAUSE_SECONDS
    log.warning(
        "rate-limit cache unavailable (%s: %s); counting in this process for %d s",
        type(exc).__name__,
        exc,
        SHARED_CACHE_PAUSE_SECONDS,
    )


def _count_safely(cache_key: str, timeout: int) -> int:
    store = _store()
    try:
        return _count(store, cache_key, timeout)
    except Exception as exc:  # the cache backend's own connection errors (redis.ConnectionError, OSError, …)
        _unavailable(exc)
        return _count(_local_counts, cache_key, timeout)


def _read_safely(cache_key: str) -> int:
    store = _store()
    try:
        return store.get(cache_key) or 0
    except Exception as exc:  # as in _count_safely: the count then lives in this process
        _unavailable(exc)
        return _local_counts.get(cache_key) or 0


def _window(scope: str, key: str):
    """(cache key, limit, seconds left in the window, window length), or None when the scope has no
    limit."""
    rate = settings.DSR_RATE_LIMITS.get(scope)
    if not rate or not key:
        return None
    limit, window = _parse(rate)
    now = int(time.time())
    start = now - now % window
    digest = hashlib.sha256(key.lower().encode()).hexdigest()[:32]
    return f"dsr-rl:{scope}:{limit}/{window}:{digest}:{start}", limit, max(1, start + window - now), window


def rate_limit_hit(*, scope: str, key: str) -> int | None:
    """Count one attempt; when over the limit, return the seconds until the window ends."""
    found = _window(scope, key)
    if found is None:
        return None
    cache_key, limit, left, window = found
    if _count_safely(cache_key, window + 5) > limit:
        return left
    return None


def rate_limit_reached(*, scope: str, key: str, limit: int | None = None) -> int | None:
    """Without counting: when the window already holds `limit` (default: the scope's) counts, the
    seconds until it ends. For limits on failures, counted afterwards with rate_limit_count."""
    found = _window(scope, key)
    if found is None:
        return None
    cache_key, scope_limit, left, _ = found
    if _read_safely(cache_key) >= (scope_limit if limit is None else limit):
        return left
    return None


def rate_limit_count(*, scope: str, key: str) -> None:
    """Count one event (a failure) without asking whether it was allowed."""
    found = _window(scope, key)
    if found is not None:
        cache_key, _, _, window = found
        _count_safely(cache_key, window + 5)


# --- The client's address -------------------------------------------------------------------------

# Requests whose socket address cannot be read share this one bucket rather than escaping the limits.
UNKNOWN_CLIENT = "unknown"


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"DSR_TRUSTED_PROXIES: {entry!r} is not an IP address or network") from None
    return tuple(networks)


def trusted_proxy_networks() -> tuple:
    return _networks(tuple(settings.DSR_TRUSTED_PROXIES))


def _address(text: str):
    """An IP address from a socket address or an X-Forwarded-For entry ("2001:db8::1",
    "[2001:db8::1]:443", "203.0.113.7:4711"), or None for anything else."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    text = text.partition("%")[0]  # an IPv6 zone ("fe80::1%eth0") names the interface, not the client
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        return address.ipv4_mapped  # "::ffff:203.0.113.7" is the IPv4 client 203.0.113.7
    return address


def _trusted(address, networks) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def _bucket(address) -> str:
    # One IPv6 subscriber holds a whole /64 and can pick any address in it: limit the /64.
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def client_ip(request) -> str:
    """The client a request comes from, for every limit keyed on the client.

    The socket peer, unless it is one of DSR_TRUSTED_PROXIES: then X-Forwarded-For is read from the
    right (the entries trusted proxies appended), trusted proxies are skipped, and the first address
    that is not one is the client. Entries further left were written by the client and prove
    nothing. An entry that is not an address stops the walk at the proxy that passed it on, so
    garbage can never choose the bucket. With no trusted proxies, forwarding headers are ignored.
    IPv6 clients are counted per /64."""
    peer = _address(request.META.get("REMOTE_ADDR", ""))
    if peer is None:
        return UNKNOWN_CLIENT
    networks = trusted_proxy_networks()
    if not networks or not _trusted(peer, networks):
        return _bucket(peer)
    client = peer
    entries = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    for entry in reversed(entries):
        if not entry.strip():
            continue  # "a, , b" or a trailing comma: a separator, not an entry
        address = _address(entry)
        if address is None:
            break
        client = address
        if not _trusted(address, networks):
            break
    # Every entry trusted: the request started inside the trusted network, at the left-most hop.
    return _bucket(client)
