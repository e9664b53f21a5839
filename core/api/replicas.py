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
        super().initial(request, *args, **kwargs)
        self._replica_block = None
        if self._replica_ok(request) and replicas.replica_aliases():
            user_id = request.user.pk if request.user.is_authenticated else None
            self._replica_block = replicas.reading_from_replicas(user_id=user_id)
            self._replica_route = self._replica_block.__enter__()

    def handle_exception(self, exc):
        route = replicas.current_route() if getattr(self, "_replica_block", None) else None
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
            block = getattr(self, "_replica_block", None)
            replicas.add_served_by_headers(response, self._replica_route if block is not None else None)
        return response

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            # Even when the view raised past DRF's handler: the next request on this thread
            # must not inherit the route.
            block = getattr(self, "_replica_block", None)
            if block is not None:
                self._replica_block = None
                block.__exit__(None, None, None)
