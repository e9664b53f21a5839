"""A Redis cache that fails open (docs/DESIGN.md, "Faults").

Everything the service keeps in the cache can be lost: prices are fetched again, throttle
counters start over. So a Redis that is down or frozen must cost a request a short wait at
most, never a 500. ``FailOpenRedisCache`` is django-redis with:

- ``IGNORE_EXCEPTIONS`` forced on: every call answers its default (``get`` the default,
  ``get_many`` ``{}``, ``set``/``add``/``incr`` ``None``) instead of raising;
- short connect and socket timeouts (CACHE_SOCKET_TIMEOUT, set in settings), so a frozen
  Redis costs one timeout, not as long as it stays frozen;
- a per-process memory of the outage: after one failed call, every call in this process
  answers its default at once for OUTAGE_RETRY_SECONDS, then one call tries Redis again. A
  request makes several cache calls (throttles, prices); without this each would wait its own
  timeout. The outage is logged once when it starts and once when it ends.

``outage()`` says whether this process currently sees the cache down, for ``health/``.
``incr_counters`` adds one to several counters in one round trip (the throttles' windows).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from django.utils import timezone
from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted
from redis.commands.core import Script
from redis.exceptions import RedisError

from core.per_key import PerKey

logger = logging.getLogger(__name__)

OUTAGE_RETRY_SECONDS = 1.0


class Outage:
    """Whether the cache server is known down in this process (shared by every thread's backend)."""

    def __init__(self, server: str) -> None:
        self.server = server
        self._lock = threading.Lock()
        self._retry_at = 0.0  # monotonic; 0 while the server is up
        self.since: datetime | None = None
        self.error: str | None = None

    def skipping(self) -> bool:
        """True while calls should not even try; claims the retry for one caller when due."""
        if not self._retry_at:
            return False
        with self._lock:
            now = time.monotonic()
            if not self._retry_at or now >= self._retry_at:
                if self._retry_at:
                    self._retry_at = now + OUTAGE_RETRY_SECONDS  # this caller tries; others keep skipping
                return False
            return True

    def failed(self, error: BaseException | None) -> None:
        with self._lock:
            self._retry_at = time.monotonic() + OUTAGE_RETRY_SECONDS
            if self.since is None:
                self.since = timezone.now()
                self.error = f"{type(error).__name__}: {error}" if error else "unknown error"
                logger.warning("Cache %s unreachable (%s): failing open", self.server, self.error)

    def reset(self) -> None:
        with self._lock:
            self._retry_at = 0.0
            self.since = None
            self.error = None

    def succeeded(self) -> None:
        if not self._retry_at and self.since is None:
            return
        with self._lock:
            if self.since is not None:
                logger.warning("Cache %s reachable again, down since %s", self.server, self.since.isoformat())
            self._retry_at = 0.0
            self.since = None
            self.error = None


outage_for: PerKey[Outage] = PerKey(Outage)


# Client methods that never talk to the server: neither skipped nor taken as a sign of recovery.
_LOCAL_METHODS = frozenset({"close", "connect", "decode", "encode", "get_client", "make_key", "make_pattern"})


class _GuardedClient:
    """The django-redis client, each public call skipped while the server is known down and
    recording its outcome otherwise."""

    def __init__(self, client, outage: Outage) -> None:
        self._client = client
        self._outage = outage

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if name.startswith("_") or name in _LOCAL_METHODS or not callable(attr):
            return attr
        outage = self._outage

        def call(*args, **kwargs):
            if outage.skipping():
                # django-redis's omit_exception turns this into the call's default answer.
                raise ConnectionInterrupted(connection=None)
            try:
                result = attr(*args, **kwargs)
            except ConnectionInterrupted as exc:
                outage.failed(exc.__cause__)
                raise
            outage.succeeded()
            return result

        self.__dict__[name] = call  # the next lookups of this name skip __getattr__
        return call


class FailOpenRedisCache(RedisCache):
    def __init__(self, server: str, params: dict) -> None:
        super().__init__(server, params)
        self._ignore_exceptions = True
        self._outage = outage_for(str(server))
        self._guarded: _GuardedClient | None = None

    @property
    def client(self):
        if self._guarded is None:
            self._guarded = _GuardedClient(super().client, self._outage)
        return self._guarded

    def outage(self) -> dict | None:
        """``{"since", "error"}`` while this process sees the server down, else None."""
        state = self._outage
        if state.since is None:
            return None
        return {"since": state.since.isoformat(), "error": state.error}


# --- Counters -------------------------------------------------------------------------------

# INCR each key, and give a key its time to live when this INCR created it: every counter of a
# request in one round trip, where django-redis's incr is a script of its own per counter.
_INCR_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
    counts[i] = redis.call('INCR', key)
    if counts[i] == 1 then redis.call('EXPIRE', key, ARGV[i]) end
end
return counts
"""
_incr_script: Script | None = None


def incr_counters(cache, counters: list[tuple[str, int]]) -> list[int] | None:
    """Add one to each ``(key, seconds to live)`` counter and return the new values in order:
    one round trip to Redis, one ``incr`` (or ``add``) per counter on another cache. None when
    the cache answers nothing (down, or storing nothing); a Redis error other than the
    production cache's known outage is raised for the caller to fail open on."""
    if isinstance(cache, RedisCache):
        return _incr_on_redis(cache, counters)
    counts = []
    for key, seconds in counters:
        try:
            count = cache.incr(key)
            if count is None:  # a cache told to ignore its errors (IGNORE_EXCEPTIONS)
                return None
            counts.append(count)
        except ValueError:  # the window's first request (or its key just expired)
            if cache.add(key, 1, seconds):
                counts.append(1)
                continue
            try:
                counts.append(cache.incr(key))
            except ValueError:  # added by nobody, yet missing: a cache that stores nothing
                return None
    return counts


def _incr_on_redis(cache: RedisCache, counters: list[tuple[str, int]]) -> list[int] | None:
    global _incr_script
    outage = getattr(cache, "_outage", None)  # FailOpenRedisCache's
    if outage is not None and outage.skipping():
        return None
    client = cache.client.get_client(write=True)
    if _incr_script is None:
        _incr_script = client.register_script(_INCR_SCRIPT)  # EVALSHA, loaded on first use
    keys = [cache.client.make_key(key) for key, _seconds in counters]
    try:
        counts = _incr_script(keys=keys, args=[seconds for _key, seconds in counters], client=client)
    except (RedisError, OSError) as error:
        if outage is None:
            raise
        outage.failed(error)
        return None
    if outage is not None:
        outage.succeeded()
    return [int(count) for count in counts]
