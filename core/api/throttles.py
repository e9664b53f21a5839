"""API throttles as fixed-window counters.

DRF's own throttles keep the time of every request of the window in the cache and read,
trim and re-write that whole list on each request: at 1,200 orders a minute that is a list
of 1,200 floats pickled twice per order. A counter per (client, window) costs one atomic
``incr`` (Redis, or the local-memory cache's lock). The price is the usual fixed-window
edge: a client may burst up to twice the rate across a window boundary.
"""

from rest_framework.throttling import ScopedRateThrottle, UserRateThrottle


class FixedWindowMixin:
    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window_key = f"{self.key}:{int(now // self.duration)}"
        try:
            count = self.cache.incr(window_key)
        except ValueError:  # the window's first request (or its key just expired)
            count = 1 if self.cache.add(window_key, 1, self.duration + 1) else self.cache.incr(window_key)
        self.wait_seconds = self.duration - (now % self.duration)
        if count is None:
            return True  # the cache is down and failed open (core/cache.py): so does the throttle
        return count <= self.num_requests

    def wait(self):
        return self.wait_seconds


class UserThrottle(FixedWindowMixin, UserRateThrottle):
    """THROTTLE_USER_RATE per user (per client address when anonymous)."""


class ScopedThrottle(FixedWindowMixin, ScopedRateThrottle):
    """The rate of the view's ``throttle_scope`` (THROTTLE_AUTH_RATE, THROTTLE_ORDER_RATE)."""

    def allow_request(self, request, view):
        # As ScopedRateThrottle: the scope, hence the rate, is only known once the view is.
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


class OrderPlacementThrottle(ScopedThrottle):
    """THROTTLE_ORDER_RATE applies to placing orders; reads only count against the user rate."""

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)
