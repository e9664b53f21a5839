"""The DRF side of read replicas (``core.replicas``): how a view says its reads tolerate lag.

    class CashTransactionViewSet(ReplicaReadMixin, OwnerScopedMixin, ...):
        replica_actions = frozenset({"list"})   # viewsets: which actions; None = every GET

Authentication, permissions and throttles run first, on the primary (a token made a moment
ago must work). Then the handler's reads may go to a healthy replica unless the user is pinned
to the primary by a recent write. If the replica fails under the request, it is marked down and
the handler runs once more on the primary: a read-only handler can be repeated. Every answer
says where it came from: ``X-Served-By: replica`` with ``X-Data-As-Of``, or ``primary``.
"""

from __future__ import annotations

import contextlib

from django.db import DatabaseError

from core import replicas


class ReplicaReadMixin:
    replica_actions: frozenset[str] | None = None

    def _replica_ok(self, request) -> bool:
        if request.method not in replicas.SAFE_METHODS:
            return False
        action = getattr(self, "action", None)
        return self.replica_actions is None or action in self.replica_actions

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles: the primary
        if self._replica_ok(request) and replicas.replica_aliases():
            user_id = request.user.pk if request.user.is_authenticated else None
            # Entered on dispatch's stack: it ends with dispatch, whatever the view raised.
            self._replica_route = self._replica_stack.enter_context(replicas.reading_from_replicas(user_id=user_id))

    def handle_exception(self, exc):
        route = self._replica_route
        if route is not None and route.served_by_replica and isinstance(exc, DatabaseError):
            replicas.fall_back_to_primary(route)
            try:
                handler = getattr(self, self.request.method.lower())
                return handler(self.request, *self.args, **self.kwargs)
            except Exception as again:  # whatever the retry raises is answered like the first error
                exc = again
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if replicas.replica_aliases():
            replicas.add_served_by_headers(response, self._replica_route)
        return response

    def dispatch(self, request, *args, **kwargs):
        # The block opened in initial() (after authentication) closes here, even when the view
        # raised past DRF's handler: the next request on this thread must not inherit the route.
        self._replica_route = None
        with contextlib.ExitStack() as self._replica_stack:
            return super().dispatch(request, *args, **kwargs)
