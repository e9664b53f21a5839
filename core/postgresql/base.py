"""Django's PostgreSQL backend, with the connection health check skipped on a busy connection,
and a cursor that prepares the statements sent on every request.

``CONN_HEALTH_CHECKS`` makes Django send ``SELECT 1`` before the first query of every request
on a reused connection, so that a request after a database restart reconnects instead of
failing. Under load that is a round trip per request, a third of a market order's, spent
asking a connection that answered a moment ago. Here the check runs only when the connection
has not been used for ``DATABASE_HEALTH_CHECK_IDLE_SECONDS`` (1 s by default): a restart takes
longer than that, and a connection that broke under a request (the request answered 503) is
closed when that request ends, as Django always did. What is given up: a connection whose last
request succeeded less than a second before the database went away and came back is not
asked, and its next request answers 503 once.

``prepared_cursor()`` is for the few fixed statements of the hot paths (the one-statement
market buy, the token and API-key lookups, the holdings of a portfolio). Django's cursors bind
parameters on the client: psycopg quotes every parameter into the text, and PostgreSQL parses
and plans the whole statement again on each call. Planning the market buy's five-table CTE costs the server more
than executing it (pgbench: 1.5-1.9x the transactions per second when prepared). This cursor
sends the parameters apart from the text and prepares the statement once per connection. It
is still Django's cursor wrapper, so errors are Django's, and query counting and execute
wrappers see it. Behind PgBouncer in transaction pooling (``DATABASE_POOLING=transaction``)
a prepared statement would be left on one server connection and looked for on another, so
there it binds on the server without preparing.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db.backends.postgresql import base, operations
from psycopg import _queries

# Statements a PreparingCursor has converted, by their text: a handful per process.
_CONVERTED: dict[tuple[str, str], tuple] = {}
_MAX_CONVERTED = 256


class _FixedStatementQuery(_queries.PostgresQuery):
    """psycopg's conversion of ``%(name)s`` placeholders to ``$1``, remembered per statement.

    psycopg remembers it only for statements under 4 KB: the settlement statements of every
    order are 5-7 KB, so each order re-split its 40-odd placeholders with a regular
    expression, ~0.2 ms of CPU (a tenth of an order's). What a PreparingCursor runs is a
    fixed text built once per process, so remembering every one of them is bounded."""

    __slots__ = ()

    def convert(self, query, vars):
        if vars is None or not isinstance(query, str):
            return super().convert(query, vars)
        key = (query, self._tx.encoding)
        converted = _CONVERTED.get(key)
        if converted is None:
            converted = _queries._query2pg_nocache(query.encode(self._tx.encoding), self._tx.encoding)
            if len(_CONVERTED) < _MAX_CONVERTED:
                _CONVERTED[key] = converted
        self.query, self._want_formats, self._order, self._parts = converted
        self.dump(vars)


class PreparingCursor(base.ServerBindingCursor):
    """psycopg's server-binding cursor, asking to prepare every statement it executes (psycopg
    does when the connection's ``prepare_threshold`` is set: see ``get_connection_params``)."""

    _query_cls = _FixedStatementQuery

    def execute(self, query, params=None, *, prepare=True, binary=None):
        return super().execute(query, params, prepare=prepare, binary=binary)


# psycopg prepares nothing while a connection's prepare_threshold is None, Django's default.
# Set, it prepares what PreparingCursor asks for and, after this many runs, any statement a
# server-binding cursor sends: none other here (Django's client-binding cursors never prepare).
_PREPARE_WHEN_ASKED = 2**31 - 1


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor, sql, params):
        # Django reads the text psycopg sent, which a server-binding cursor sends with $1
        # placeholders (or not at all, once prepared): show the statement with its values,
        # as Django does when server_side_binding is on. Only DEBUG and query capture ask.
        if isinstance(cursor, PreparingCursor):
            return self.compose_sql(sql, params)
        return super().last_executed_query(cursor, sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    _last_used = 0.0  # time.monotonic() when a cursor was last taken on this connection
    _preparing = False  # create_cursor's mode while prepared_cursor() takes a cursor

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

    def get_connection_params(self):
        params = super().get_connection_params()
        if params.get("prepare_threshold") is None and settings.DATABASE_POOLING != "transaction":
            params["prepare_threshold"] = _PREPARE_WHEN_ASKED
        return params

    def create_cursor(self, name=None):
        if self._preparing and name is None:
            return PreparingCursor(self.connection)
        return super().create_cursor(name)

    def prepared_cursor(self):
        """A cursor (Django's wrapper, health check and error translation included) that binds
        parameters on the server and prepares what it executes. PostgreSQL infers the type of
        a parameter from where it stands (a column it is compared with or inserted into);
        where nothing says, cast it in the SQL."""
        self._preparing = True
        try:
            return self.cursor()
        finally:
            self._preparing = False
