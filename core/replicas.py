"""Read replicas: which reads may go to a streaming replica, and which replica is fit to serve.

docs/DESIGN.md, "Scaling". Everything reads from and writes to the primary (``default``) unless a view
opts in: a list of history, the activity feed, market data, portfolio history, an admin
changelist. Those tolerate a little lag. A view opts in with ``core.api.replicas.ReplicaReadMixin``
(DRF) or :func:`reading_from_replicas` (the admin); the opt-in holds for the request only.

Even an opted-in read goes to the primary when
- the request has written anything (the router saw a write), or
- the user wrote in an earlier request less than :func:`pin_seconds` ago (a cache key set by
  :class:`ReadYourWritesMiddleware` after every unsafe request), or
- no replica is healthy: up, in recovery, streaming, and no more than ``REPLICA_MAX_LAG_SECONDS``
  behind. Health is checked with one query per replica at most every ``REPLICA_CHECK_SECONDS``
  per process, never per request.

Why the pin lasts ``REPLICA_MAX_LAG_SECONDS + REPLICA_CHECK_SECONDS + 1``: a replica is used at
time t only if a check at some c >= t - CHECK found it at most MAX_LAG behind, i.e. it had
replayed every transaction committed before c - MAX_LAG >= t - CHECK - MAX_LAG. A write that
committed before that instant is on the replica; a later one is still pinned. A cache that
cannot be read, or was down less than a pin's lifetime ago, pins everyone.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connections, router

PRIMARY = "default"
REPLICA_PREFIX = "replica"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PIN_KEY = "replica-pin:{user_id}"

# A cache that fails must not send a just-written user to a stale replica: errors count as pinned.
try:
    from django_redis.exceptions import ConnectionInterrupted
    from redis.exceptions import RedisError

    CACHE_ERRORS: tuple[type[BaseException], ...] = (ConnectionInterrupted, RedisError, OSError)
except ImportError:  # pragma: no cover - both are pinned in requirements.txt
    CACHE_ERRORS = (OSError,)

# The WAL receiver's row exists for every role while it runs, but its status only shows to
# superusers and pg_read_all_stats. Lag: 0 when all that was received is replayed (an idle
# primary sends nothing, and after a restart the receiver restarts at or before the replay
# point); else the age of the last replayed commit (NULL after a restart: unknown, skipped).
LAG_SQL = """
SELECT pg_is_in_recovery(),
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver),
       (SELECT status FROM pg_stat_wal_receiver),
       CASE WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0
            ELSE EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())
       END
"""


def replica_aliases() -> list[str]:
    return [alias for alias in settings.DATABASES if alias.startswith(REPLICA_PREFIX)]


def pin_seconds() -> int:
    return math.ceil(settings.REPLICA_MAX_LAG_SECONDS + settings.REPLICA_CHECK_SECONDS) + 1


# --- Replica health, per process -----------------------------------------------------------


@dataclass(frozen=True)
class ReplicaHealth:
    alias: str
    healthy: bool
    lag_seconds: float | None
    checked_at: float  # time.monotonic()
    reason: str = ""


_health: dict[str, ReplicaHealth] = {}
_health_lock = threading.Lock()


def check_replica(alias: str) -> ReplicaHealth:
    """One query on the replica: is it a standby, streaming, and how far behind."""
    now = time.monotonic()
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(LAG_SQL)
            in_recovery, receiving, receiver_status, lag = cursor.fetchone()
    except DatabaseError as error:
        # Down or restarting: drop the broken connection so the next check dials again.
        connections[alias].close()
        return ReplicaHealth(alias, False, None, now, f"unreachable: {error.__class__.__name__}")
    lag = float(lag) if lag is not None else None
    if not in_recovery:
        return ReplicaHealth(alias, False, lag, now, "not in recovery (promoted?)")
    if not receiving:
        return ReplicaHealth(alias, False, lag, now, "no wal receiver: cut off from its primary")
    # The status is NULL for roles without pg_read_all_stats; then the lag alone decides.
    if receiver_status is not None and receiver_status != "streaming":
        return ReplicaHealth(alias, False, lag, now, f"wal receiver {receiver_status}")
    if lag is None or lag > settings.REPLICA_MAX_LAG_SECONDS:
        return ReplicaHealth(alias, False, lag, now, "lagging")
    return ReplicaHealth(alias, True, lag, now)


def replica_health(alias: str) -> ReplicaHealth:
    known = _health.get(alias)
    if known is not None and time.monotonic() - known.checked_at < settings.REPLICA_CHECK_SECONDS:
        return known
    with _health_lock:  # one thread checks; the others of this process reuse its answer
        known = _health.get(alias)
        if known is None or time.monotonic() - known.checked_at >= settings.REPLICA_CHECK_SECONDS:
            known = _health[alias] = check_replica(alias)
    return known


def mark_down(alias: str, reason: str) -> None:
    """A query on the replica failed mid-request: skip it until the next check is due."""
    connections[alias].close()
    _health[alias] = ReplicaHealth(alias, False, None, time.monotonic(), reason)


def healthy_replica() -> ReplicaHealth | None:
    candidates = [health for alias in replica_aliases() if (health := replica_health(alias)).healthy]
    return random.choice(candidates) if candidates else None  # spreads load; not a secret


# --- Read-your-writes pin, across requests and processes (the shared cache) ---------------


def pin_to_primary(user_id: int) -> None:
    with contextlib.suppress(*CACHE_ERRORS):
        cache.set(PIN_KEY.format(user_id=user_id), time.time() + pin_seconds(), pin_seconds())


_cache_doubtful_until = 0.0  # time.monotonic(); see _cache_doubtful


def _cache_doubtful() -> bool:
    """The fail-open cache (core/cache.py) answers "no key" while Redis is down, and pins set
    during an outage were lost: until a pin's lifetime after the last outage this process saw,
    every user counts as pinned."""
    global _cache_doubtful_until
    outage = getattr(cache, "outage", None)
    if callable(outage) and outage() is not None:
        _cache_doubtful_until = time.monotonic() + pin_seconds()
    return time.monotonic() < _cache_doubtful_until


def is_pinned(user_id: int | None) -> bool:
    if user_id is None:
        return False
    try:
        until = cache.get(PIN_KEY.format(user_id=user_id))
    except CACHE_ERRORS:
        return True
    if _cache_doubtful():
        return True
    return until is not None and until > time.time()


class ReadYourWritesMiddleware:
    """After any unsafe request of a logged-in user, keep that user's reads on the primary for
    :func:`pin_seconds`, whichever app process serves them; mark every other answer as the
    primary's (``X-Served-By``). Installed only with replicas."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.enabled = bool(replica_aliases())

    def __call__(self, request):
        response = self.get_response(request)
        if self.enabled:
            response.setdefault("X-Served-By", "primary")  # views that read a replica say so themselves
        if self.enabled and request.method not in SAFE_METHODS:
            # DRF's token authentication sets request.user on the Django request too.
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                pin_to_primary(user.pk)
        return response


# --- The request's route, and the router --------------------------------------------------


@dataclass
class Route:
    allowed: bool
    wrote: bool = False
    replica: ReplicaHealth | None = None
    chose: bool = False  # a replica (or none) was chosen for this request
    reads_on_replica: int = 0

    @property
    def served_by_replica(self) -> bool:
        return self.reads_on_replica > 0

    def as_of(self) -> datetime | None:
        """The newest instant the replica surely had: its last check, less the lag it had then."""
        if self.replica is None:
            return None
        checked = datetime.now(tz=UTC) - timedelta(seconds=time.monotonic() - self.replica.checked_at)
        return checked - timedelta(seconds=self.replica.lag_seconds or 0)


_route: contextvars.ContextVar[Route | None] = contextvars.ContextVar("replica_route", default=None)


@contextlib.contextmanager
def reading_from_replicas(*, user_id: int | None) -> Iterator[Route]:
    """Let the reads inside go to a healthy replica (unless ``user_id`` is pinned or the block
    writes). Yields the route, which says afterwards whether a replica served."""
    route = Route(allowed=bool(replica_aliases()) and not is_pinned(user_id))
    token = _route.set(route)
    try:
        yield route
    finally:
        _route.reset(token)


def fall_back_to_primary(route: Route) -> None:
    """The replica failed under this request: mark it down and send the rest to the primary."""
    if route.replica is not None:
        mark_down(route.replica.alias, "query failed")
    route.allowed = False
    route.replica = None
    route.reads_on_replica = 0


def add_served_by_headers(response, route: Route | None) -> None:
    if route is None or not route.served_by_replica:
        response["X-Served-By"] = "primary"
        return
    response["X-Served-By"] = "replica"
    response["X-Data-As-Of"] = route.as_of().isoformat()


def read_connection(model):
    """The connection a raw read of ``model``'s table goes to: the one the router picks, a
    healthy replica inside a block that allows one (``reading_from_replicas``), else the
    primary. Its ``cursor()``, its ``prepared_cursor()`` (core/postgresql/base.py) or a
    transaction on its ``alias``: the one way every raw read picks its database."""
    return connections[router.db_for_read(model)]


class ReplicaRouter:
    """DATABASE_ROUTERS entry. Reads outside an opted-in block, and all writes, use the primary."""

    def db_for_read(self, model, **hints):
        route = _route.get()
        if route is None or not route.allowed or route.wrote:
            return PRIMARY
        if not route.chose:  # one replica per request: a page and its count agree
            route.chose = True
            route.replica = healthy_replica()
        if route.replica is None:
            return PRIMARY
        route.reads_on_replica += 1
        return route.replica.alias

    def db_for_write(self, model, **hints):
        route = _route.get()
        if route is not None:
            route.wrote = True  # every later read of this request sees the write: the primary
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        return True  # replicas hold the primary's data: a row read there relates to one here

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == PRIMARY  # a standby is read-only; it gets the schema by replication


def replica_ok(view):
    """Decorate a plain Django view (or the admin's changelist_view) whose GETs tolerate lag.

    The response is rendered inside the block: a TemplateResponse runs its rows' query when it
    renders. If the replica fails under the request, it is marked down and the view runs once
    more on the primary."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method not in SAFE_METHODS or not replica_aliases():
            return view(request, *args, **kwargs)
        user = getattr(request, "user", None)
        user_id = user.pk if user is not None and user.is_authenticated else None
        try:
            with reading_from_replicas(user_id=user_id) as route:
                response = view(request, *args, **kwargs)
                if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                    response.render()
        except DatabaseError:
            if not route.served_by_replica:
                raise
            fall_back_to_primary(route)
            response = view(request, *args, **kwargs)
        add_served_by_headers(response, route)
        return response

    return wrapped
