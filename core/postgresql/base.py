"""Django's PostgreSQL backend, with the connection health check skipped on a busy connection.

``CONN_HEALTH_CHECKS`` makes Django send ``SELECT 1`` before the first query of every request
on a reused connection, so that a request after a database restart reconnects instead of
failing. Under load that is a round trip per request, a third of a market order's, spent
asking a connection that answered a moment ago. Here the check runs only when the connection
has not been used for ``DATABASE_HEALTH_CHECK_IDLE_SECONDS`` (1 s by default): a restart takes
longer than that, and a connection that broke under a request (the request answered 503) is
closed when that request ends, as Django always did. What is given up: a connection whose last
request succeeded less than a second before the database went away and came back is not
asked, and its next request answers 503 once.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    _last_used = 0.0  # time.monotonic() when a cursor was last taken on this connection

    def close_if_health_check_failed(self):
        # Django calls this before each cursor, and at most once a request does it ping.
        if (
            self.connection is not None
            and not self.health_check_done
            and time.monotonic() - self._last_used < settings.DATABASE_HEALTH_CHECK_IDLE_SECONDS
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def _cursor(self, name=None):
        cursor = super()._cursor(name)
        self._last_used = time.monotonic()
        return cursor
